//! The session manifest against real files: round trips, bad input, repair, symlinks,
//! concurrent writers (threads and processes), the session lock and liveness.
//!
//! Everything sits in `mod manifest` so that `cargo test manifest` selects it.

mod manifest {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use git_teleos::manifest::{
        hostname, now_unix, pid_alive, session_liveness, session_lock_path, Liveness, Manifest,
        ManifestFile, Session, SessionLock, WorktreeEntry,
    };
    use git_teleos::Error;
    use serde_json::{json, Value};

    /// Set in a re-executed copy of this test binary to make it a worker (see `child_process_*`).
    const CHILD_ENV: &str = "TELEOS_MANIFEST_TEST_CHILD";

    fn raw(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn error_text(e: &Error) -> String {
        format!("{e}\n{}", e.hints().join("\n"))
    }

    fn dir_listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A pid no process can have: above the kernel's `pid_max` (at most 2^22 on Linux). A pid
    /// of an exited child is not enough: the other tests, running at the same time, start
    /// processes that can be given it again.
    fn dead_pid() -> i32 {
        let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 22);
        let pid = pid_max.saturating_add(1);
        assert!(!pid_alive(pid));
        pid
    }

    #[test]
    fn round_trip_keeps_unknown_fields_and_other_sessions() {
        let tmp = tempfile::tempdir().unwrap();
        let mf = ManifestFile::new(tmp.path());
        let original = json!({
            "version": 3,
            "sessions": {
                "a1b2c3": {
                    "pid": "4242",
                    "started_at": 1_767_225_600_123_i64,
                    "workflow": "story-closer",
                    "integration_branch": "integration-a1b2c3",
                    "worktrees": [
                        {"path": "/r/.claude/worktrees/teleos-a1b2c3-1",
                         "branch": "worktree/teleos-a1b2c3-1",
                         "stories": ["1-2"], "agent_task_id": null}
                    ],
                    "status": "active",
                    "custom": {"nested": [1, 2, {"deep": true}]}
                },
                "other-tool-7": {
                    "pid": 17,
                    "started_at": "2026-01-01T00:00:00.123+02:00",
                    "worktrees": "managed elsewhere",
                    "owner": "someone"
                }
            },
            "trailing": "kept"
        });
        std::fs::write(mf.path(), serde_json::to_vec_pretty(&original).unwrap()).unwrap();

        mf.update(|m| {
            let mut ours = Session::new(
                "integration-0f0f0f",
                vec![WorktreeEntry::new(
                    "/r/.claude/worktrees/teleos-0f0f0f-1",
                    "worktree/teleos-0f0f0f-1",
                )],
            );
            ours.agent_pgids = vec![1234];
            ours.worktrees[0].story = Some("3-1".into());
            m.sessions.insert("0f0f0f".into(), ours);
            Ok(())
        })
        .unwrap();

        let after = raw(mf.path());
        assert_eq!(after["version"], original["version"]);
        assert_eq!(after["trailing"], original["trailing"]);
        for sid in ["a1b2c3", "other-tool-7"] {
            assert_eq!(after["sessions"][sid], original["sessions"][sid], "{sid}");
        }
        let ours = &after["sessions"]["0f0f0f"];
        assert_eq!(ours["pid"], json!(std::process::id()));
        let started = ours["started_at"].as_str().unwrap();
        assert!(
            started.len() == 20 && started.ends_with('Z') && &started[10..11] == "T",
            "{started}"
        );
        assert_eq!(ours["workflow"], "story-closer");
        assert_eq!(ours["status"], "active");
        assert_eq!(ours["tool"], "git-teleos");
        assert_eq!(ours["host"], json!(hostname()));
        assert_eq!(ours["agent_pgids"], json!([1234]));
        assert_eq!(
            ours["worktrees"],
            json!([{"path": "/r/.claude/worktrees/teleos-0f0f0f-1",
                    "branch": "worktree/teleos-0f0f0f-1", "story": "3-1"}])
        );

        // Removing our session gives back exactly what another tool wrote.
        mf.update(|m| {
            m.sessions.remove("0f0f0f");
            Ok(())
        })
        .unwrap();
        assert_eq!(raw(mf.path()), original);
    }

    #[test]
    fn reads_are_lenient() {
        let tmp = tempfile::tempdir().unwrap();
        let mf = ManifestFile::new(tmp.path());
        assert!(mf.read().unwrap().is_none(), "no file is no manifest");
        std::fs::write(
            mf.path(),
            r#"{"sessions": {
                "aaaaaa": {"pid": "1234\n", "started_at": 1767225600123},
                "bbbbbb": {"pid": 99, "started_at": "2026-01-01T00:00:00.123+02:00"},
                "cccccc": {"pid": "abc", "started_at": "last tuesday"},
                "dddddd": {}
            }}"#,
        )
        .unwrap();
        let m = mf.read().unwrap().unwrap();
        let s = |sid: &str| &m.sessions[sid];
        assert_eq!(s("aaaaaa").pid, Some(1234));
        assert_eq!(s("aaaaaa").started_at_unix(), Some(1_767_225_600));
        assert_eq!(s("bbbbbb").pid, Some(99));
        assert_eq!(s("bbbbbb").started_at_unix(), Some(1_767_225_600 - 7200));
        assert!(s("cccccc").pid_unreadable() && s("cccccc").started_at_unreadable());
        assert_eq!(s("dddddd"), &Session::default());

        // `{}` and a missing "sessions" are an empty manifest.
        std::fs::write(mf.path(), "{}").unwrap();
        assert_eq!(mf.read().unwrap(), Some(Manifest::default()));
    }

    #[test]
    fn bad_manifest_is_an_error_naming_it_and_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let mf = ManifestFile::new(tmp.path());
        for content in [
            "",
            "  \n",
            "not json",
            r#"{"sessions": {"aaaaaa": {"pid": 1"#,
            "[]",
            r#"{"sessions": []}"#,
            r#"{"sessions": {"aaaaaa": 5}}"#,
            r#"{"sessions": {"aaaaaa": {"worktrees": [5]}}} trailing"#,
        ] {
            std::fs::write(mf.path(), content).unwrap();
            let listing = dir_listing(tmp.path());
            for e in [mf.read().unwrap_err(), mf.update(|_| Ok(())).unwrap_err()] {
                let text = error_text(&e);
                assert!(text.contains(&mf.path().display().to_string()), "{text}");
                assert!(text.contains("--repair"), "{text}");
                assert_eq!(e.exit_code(), 2);
            }
            assert_eq!(std::fs::read(mf.path()).unwrap(), content.as_bytes());
            let mut expected = listing;
            if !expected.contains(&"manifest.lock".to_string()) {
                expected.push("manifest.lock".into());
                expected.sort();
            }
            assert_eq!(dir_listing(tmp.path()), expected, "no stray files");
        }
    }

    #[test]
    fn repair_moves_a_bad_manifest_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let mf = ManifestFile::new(tmp.path());
        assert_eq!(mf.repair().unwrap(), None, "nothing to repair");
        std::fs::write(mf.path(), r#"{"sessions": {}}"#).unwrap();
        assert_eq!(mf.repair().unwrap(), None, "a good manifest is kept");
        assert!(mf.path().exists());

        let mut backups = Vec::new();
        for content in ["{\"sessions\": {\"trunc", "again"] {
            std::fs::write(mf.path(), content).unwrap();
            let backup = mf.repair().unwrap().unwrap();
            assert_eq!(backup.parent(), Some(tmp.path()));
            let name = backup.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("manifest.json.bad-"), "{name}");
            assert_eq!(std::fs::read(&backup).unwrap(), content.as_bytes());
            assert!(!mf.path().exists());
            backups.push(backup);
        }
        assert_ne!(
            backups[0], backups[1],
            "a second repair keeps the first backup"
        );

        mf.update(|m| {
            m.sessions.insert("abcdef".into(), Session::default());
            Ok(())
        })
        .unwrap();
        assert!(mf.read().unwrap().unwrap().sessions.contains_key("abcdef"));
    }

    #[test]
    fn symlinked_manifest_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere.json");
        std::fs::write(&elsewhere, r#"{"sessions": {}}"#).unwrap();
        let dir = tmp.path().join("worktrees");
        std::fs::create_dir(&dir).unwrap();
        let mf = ManifestFile::new(&dir);
        std::os::unix::fs::symlink(&elsewhere, mf.path()).unwrap();
        for e in [
            mf.read().unwrap_err(),
            mf.update(|_| Ok(())).unwrap_err(),
            mf.repair().unwrap_err(),
        ] {
            let text = error_text(&e);
            assert!(text.contains(&mf.path().display().to_string()), "{text}");
            assert!(text.contains("symbolic link"), "{text}");
        }
        assert!(mf.path().symlink_metadata().unwrap().is_symlink());
        assert_eq!(std::fs::read(&elsewhere).unwrap(), br#"{"sessions": {}}"#);

        // A symlinked lock file is refused too: it could make us create files elsewhere.
        let dir2 = tmp.path().join("worktrees2");
        std::fs::create_dir(&dir2).unwrap();
        let mf2 = ManifestFile::new(&dir2);
        std::os::unix::fs::symlink(tmp.path().join("planted"), mf2.lock_path()).unwrap();
        let e = mf2.update(|_| Ok(())).unwrap_err();
        assert!(error_text(&e).contains("symbolic link"));
        assert!(!tmp.path().join("planted").exists());
    }

    #[test]
    fn failing_closure_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new/worktrees");
        let mf = ManifestFile::new(&dir);
        let r: Result<(), _> = mf.update(|m| {
            m.sessions.insert("abcdef".into(), Session::default());
            Err(Error::usage("changed my mind"))
        });
        assert_eq!(r.unwrap_err().to_string(), "changed my mind");
        assert!(!mf.path().exists(), "no manifest created");

        let content = "{\n  \"sessions\": {},\n  \"x\": 1\n}";
        std::fs::write(mf.path(), content).unwrap();
        let r: Result<(), _> = mf.update(|m| {
            m.extra.clear();
            Err(Error::usage("no"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(mf.path()).unwrap(), content);
        assert_eq!(dir_listing(&dir), ["manifest.json", "manifest.lock"]);

        // The closure's value comes back when it succeeds.
        assert_eq!(mf.update(|m| Ok(m.sessions.len())).unwrap(), 0);
    }

    /// One read-modify-write as the concurrency tests do it: bump a counter, add a session.
    fn bump(mf: &ManifestFile, key: String) {
        mf.update(|m| {
            let n = m.extra.get("counter").and_then(Value::as_u64).unwrap_or(0);
            m.extra.insert("counter".into(), json!(n + 1));
            m.sessions.insert(key, Session::default());
            Ok(())
        })
        .unwrap();
    }

    /// Reads until `stop`, checking every version seen parses (with our reader and raw).
    fn reader_loop(dir: PathBuf, stop: Arc<AtomicBool>) -> usize {
        let mf = ManifestFile::new(&dir);
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            mf.read().expect("a reader saw an invalid manifest");
            if let Ok(bytes) = std::fs::read(mf.path()) {
                serde_json::from_slice::<Value>(&bytes).expect("torn manifest on disk");
            }
            reads += 1;
        }
        reads
    }

    /// Run `write` (which makes `updates` bumps in a fresh folder) while a reader checks every
    /// version it sees; then no update may be lost and nothing but the two files left.
    fn no_update_lost(updates: usize, write: impl FnOnce(&Path)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || reader_loop(dir, stop))
        };
        write(&dir);
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        let m = ManifestFile::new(&dir).read().unwrap().unwrap();
        assert_eq!(m.extra["counter"], json!(updates));
        assert_eq!(m.sessions.len(), updates);
        assert_eq!(dir_listing(&dir), ["manifest.json", "manifest.lock"]);
    }

    #[test]
    fn threads_lose_no_update() {
        const THREADS: usize = 16;
        const ITERATIONS: usize = 20;
        no_update_lost(THREADS * ITERATIONS, |dir| {
            let writers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let dir = dir.to_path_buf();
                    // A ManifestFile per thread: each update opens its own lock file description.
                    std::thread::spawn(move || {
                        let mf = ManifestFile::new(&dir);
                        for i in 0..ITERATIONS {
                            bump(&mf, format!("t{t}-{i}"));
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
        });
    }

    #[test]
    fn processes_lose_no_update() {
        const PROCESSES: usize = 100;
        const ITERATIONS: usize = 3;
        no_update_lost(PROCESSES * ITERATIONS, |dir| {
            let exe = std::env::current_exe().unwrap();
            let children: Vec<_> = (0..PROCESSES)
                .map(|p| {
                    Command::new(&exe)
                        .args([
                            "manifest::manifest::child_process_writer",
                            "--exact",
                            "--quiet",
                        ])
                        .env(CHILD_ENV, format!("{}\n{p}\n{ITERATIONS}", dir.display()))
                        .stdout(Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for mut c in children {
                assert!(c.wait().unwrap().success());
            }
        });
    }

    /// Worker for `processes_lose_no_update`; does nothing in a normal run.
    #[test]
    fn child_process_writer() {
        let Ok(spec) = std::env::var(CHILD_ENV) else {
            return;
        };
        let [dir, p, n] = spec.lines().collect::<Vec<_>>()[..] else {
            panic!("bad {CHILD_ENV}: {spec:?}");
        };
        let mf = ManifestFile::new(Path::new(dir));
        for i in 0..n.parse::<usize>().unwrap() {
            bump(&mf, format!("p{p}-{i}"));
        }
    }

    /// Worker for `session_lock_dies_with_its_process`: holds a session lock until killed.
    #[test]
    fn child_process_lock_holder() {
        let Ok(spec) = std::env::var(CHILD_ENV) else {
            return;
        };
        let [dir, sid] = spec.lines().collect::<Vec<_>>()[..] else {
            panic!("bad {CHILD_ENV}: {spec:?}");
        };
        let _lock = SessionLock::acquire(Path::new(dir), sid).unwrap();
        println!("locked");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn session_lock_is_liveness_within_one_process() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("worktrees");
        let now = now_unix();
        // A session that the pid rule would call dead: only the lock can say otherwise.
        let session = Session {
            pid: Some(dead_pid()),
            started_at: Some(now - 10 * 3600),
            ..Session::default()
        };

        let lock = SessionLock::acquire(&dir, "abc123").unwrap();
        assert_eq!(lock.sid(), "abc123");
        assert_eq!(lock.path(), session_lock_path(&dir, "abc123"));
        let note = std::fs::read_to_string(lock.path()).unwrap();
        assert!(
            note.starts_with(&format!("pid {}\n", std::process::id())),
            "{note}"
        );
        // flock locks belong to open file descriptions: a fresh open in this same process
        // is refused like any other process would be.
        assert_eq!(
            session_liveness(&dir, "abc123", &session, 4.0, now),
            Liveness::Alive("session lock held")
        );
        let again = SessionLock::acquire(&dir, "abc123").unwrap_err();
        assert!(again.to_string().contains("in use"), "{again}");

        drop(lock);
        // The file stays, but is no proof: the lock is free.
        assert!(session_lock_path(&dir, "abc123").exists());
        assert_eq!(
            session_liveness(&dir, "abc123", &session, 4.0, now),
            Liveness::Dead("session lock free".into())
        );
        // Trying it released it again at once.
        let lock = SessionLock::acquire(&dir, "abc123").unwrap();
        lock.release_and_remove().unwrap();
        assert!(!session_lock_path(&dir, "abc123").exists());
        // Without a lock file, the pid rule applies.
        assert!(!session_liveness(&dir, "abc123", &session, 4.0, now).is_alive());
    }

    #[test]
    fn session_lock_dies_with_its_process() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "manifest::manifest::child_process_lock_holder",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, format!("{}\nfeed00", dir.display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim() != "locked" {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        }
        let session = Session {
            pid: Some(child.id() as i32),
            started_at: Some(now_unix()),
            ..Session::default()
        };
        assert_eq!(
            session_liveness(&dir, "feed00", &session, 4.0, now_unix()),
            Liveness::Alive("session lock held")
        );
        child.kill().unwrap(); // SIGKILL: no clean-up code runs in the child
        child.wait().unwrap();
        assert_eq!(
            session_liveness(&dir, "feed00", &session, 4.0, now_unix()),
            Liveness::Dead("session lock free".into())
        );
    }

    #[test]
    fn session_lock_refuses_bad_ids() {
        let tmp = tempfile::tempdir().unwrap();
        for sid in [
            "", "abc12", "abc1234", "ABC123", "abc12g", "../../x", "ab/c12",
        ] {
            let e = SessionLock::acquire(tmp.path(), sid).unwrap_err();
            assert!(e.to_string().contains("invalid session id"), "{sid}: {e}");
        }
        assert!(dir_listing(tmp.path()).is_empty());
    }

    #[test]
    fn liveness_of_foreign_sessions_follows_the_seed_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let now = now_unix();
        let dead = dead_pid();
        let me = std::process::id() as i32;
        let check = |session: &Session| session_liveness(dir, "aaaaaa", session, 4.0, now);
        let session = |pid: Option<i32>, age_hours: Option<i64>| Session {
            pid,
            started_at: age_hours.map(|h| now - h * 3600),
            ..Session::default()
        };

        assert!(matches!(
            check(&session(Some(dead), Some(5))),
            Liveness::Dead(_)
        ));
        assert_eq!(
            check(&session(Some(dead), Some(3))),
            Liveness::Alive("too recent to judge")
        );
        assert_eq!(
            check(&session(Some(me), Some(100))),
            Liveness::Alive("pid running")
        );
        assert_eq!(
            check(&session(None, None)),
            Liveness::Dead("no pid or start time".into())
        );
        assert!(matches!(check(&session(None, Some(5))), Liveness::Dead(_)));
        assert!(check(&session(Some(dead), None)).is_alive());

        // Unreadable values are never taken as proof of death.
        let m: Manifest = serde_json::from_value(json!({"sessions": {
            "a": {"pid": "abc", "started_at": 0},
            "b": {"pid": dead, "started_at": "long ago"},
        }}))
        .unwrap();
        assert!(check(&m.sessions["a"]).is_alive());
        assert!(check(&m.sessions["b"]).is_alive());

        // A pid from another host is not checked here: only the age counts.
        let mut remote = session(Some(me), Some(5));
        remote.host = Some(format!("not-{}", hostname()));
        assert!(matches!(check(&remote), Liveness::Dead(_)));
        remote.host = Some(hostname());
        assert!(check(&remote).is_alive());

        // Invalid ids never reach the file system as lock paths.
        assert!(matches!(
            session_liveness(dir, "../x", &session(Some(dead), Some(5)), 4.0, now),
            Liveness::Dead(_)
        ));
    }

    #[test]
    fn pid_alive_checks_processes_not_groups() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(
            pid_alive(1),
            "init exists even if we may not signal it (EPERM)"
        );
        assert!(!pid_alive(0));
        assert!(!pid_alive(-1));
        assert!(!pid_alive(dead_pid()));
        assert!(!hostname().is_empty());
    }

    #[test]
    fn one_manifest_file_shared_by_threads() {
        // Each update opens the lock file afresh, so sharing one `ManifestFile` is as safe as
        // one per thread.
        let tmp = tempfile::tempdir().unwrap();
        let mf = Arc::new(ManifestFile::new(tmp.path()));
        let done = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let (mf, done) = (mf.clone(), done.clone());
                std::thread::spawn(move || {
                    for i in 0..10 {
                        bump(&mf, format!("s{t}-{i}"));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), 40);
        assert_eq!(mf.read().unwrap().unwrap().extra["counter"], json!(40));
    }
}
