//! Resource faults: a full disk while writing the manifest and while creating worktrees. Uses a
//! small tmpfs (needs root and mount permission; skipped with the reason otherwise).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{story, TestRepo};
use git_teleos::manifest::{ManifestFile, Session};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Fill the filesystem until writes fail.
    fn fill(&self) {
        let mut i = 0;
        loop {
            let chunk = vec![b'x'; 4096];
            if std::fs::write(self.path.join(format!("filler-{i}")), &chunk).is_err() {
                break;
            }
            i += 1;
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

macro_rules! mount_or_skip {
    ($path:expr, $size:expr) => {
        match Tmpfs::mount($path, $size) {
            Ok(m) => m,
            Err(why) => {
                eprintln!("skipped: cannot mount a tmpfs here ({why})");
                return;
            }
        }
    };
}

#[test]
fn a_full_disk_never_tears_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wt");
    let fs = mount_or_skip!(&dir, "64k");
    let manifest = ManifestFile::new(&dir);
    manifest
        .update(|m| {
            m.sessions
                .insert("abc123".into(), Session::new("integration-abc123", vec![]));
            Ok(())
        })
        .unwrap();
    let before = std::fs::read(manifest.path()).unwrap();
    fs.fill();
    let err = manifest
        .update(|m| {
            for i in 0..200 {
                m.sessions.insert(
                    format!("{i:06x}"),
                    Session::new(format!("integration-{i:06x}"), vec![]),
                );
            }
            Ok(())
        })
        .expect_err("a write on a full disk must fail");
    assert!(err.to_string().to_lowercase().contains("space"), "{err}");
    // The old manifest is intact and no temporary file is left beside it.
    assert_eq!(std::fs::read(manifest.path()).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_full_disk_while_creating_worktrees_is_reported_and_loses_nothing() {
    let r = TestRepo::new();
    r.agent_identity();
    r.write("docs/sprint-artifacts/1-1-a.md", &story("A", 9, 1));
    // More than the tmpfs can hold, so the checkout into the worktree runs out of space.
    for i in 0..64 {
        r.write(&format!("data/file-{i}.txt"), &"y".repeat(8192));
    }
    r.commit_all("stories and data");
    let wt_dir = r.home.join("small-disk");
    let _fs = mount_or_skip!(&wt_dir, "128k");
    r.git(&["config", "teleos.worktreeDir", wt_dir.to_str().unwrap()]);
    // Claude's real protocol; the run should stop before any agent starts, but if a worktree
    // were made after all, the agent would answer as the real CLI does.
    common::agent::Claude::new().tick().install(&r);
    let start = r.git(&["rev-parse", "HEAD"]);
    let out = r.teleos(["close", "--parallel", "1", "--all", "--yes", "--json"]);
    eprintln!("exit {}\n{}", out.code, out.stderr);
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.code == 1 || out.code == 2,
        "exit {}: {}",
        out.code,
        out.stderr
    );
    let all = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(all.contains("space"), "the cause is named:\n{all}");
    // Nothing lost, nothing disturbed, no half-made worktree registered.
    assert_eq!(r.git(&["rev-parse", "main"]), start);
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
    let listed = r.git(&["worktree", "list", "--porcelain"]);
    assert_eq!(listed.matches("worktree ").count(), 1, "{listed}");
}
