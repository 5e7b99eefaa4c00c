//! The integration gate's bisection and rebuild, on a real repository: which merge is blamed,
//! what the rebuilt integration holds, and that ejected work does not come back through the
//! history of a story that started after it merged.

use crate::common;

use std::time::Duration;

use common::TestRepo;
use git_teleos::batch::gate::{integration_gate, Ejected, GateCheckout, GateEnv, MergeRecord};
use git_teleos::gate::Gate;
use gix::ObjectId;

/// Red when a route is registered twice.
const CHECK: &str = "dups=$(cat routes/* 2>/dev/null | sort | uniq -d)\n[ -z \"$dups\" ] || { echo \"route registered twice: $dups\"; exit 1; }\n";

fn id(r: &TestRepo, spec: &str) -> ObjectId {
    ObjectId::from_hex(r.git(&["rev-parse", spec]).as_bytes()).unwrap()
}

/// A story branch from `from` that writes `files`; returns its tip.
fn story(r: &TestRepo, name: &str, from: &str, files: &[(&str, &str)]) -> ObjectId {
    r.git(&["switch", "-q", "-c", name, from]);
    for (path, text) in files {
        r.write(path, text);
    }
    r.commit_all(&format!("story {name}"));
    r.git(&["switch", "-q", "main"]);
    id(r, name)
}

/// Merge `tip` into `integration` as the batch does, recording the merge.
fn merge(r: &TestRepo, key: &str, tip: ObjectId, log: &mut Vec<MergeRecord>) {
    let before = id(r, "integration");
    r.git(&["switch", "-q", "integration"]);
    r.git(&["merge", "-q", "--no-edit", &tip.to_string()]);
    r.git(&["switch", "-q", "main"]);
    log.push(MergeRecord {
        key: key.into(),
        before,
        after: id(r, "integration"),
        story_tip: tip,
        tip_green: false,
        tracker_status: None,
    });
}

fn run(
    r: &TestRepo,
    start: ObjectId,
    merges: &[MergeRecord],
) -> git_teleos::batch::gate::IntegrationVerdict {
    let wt = r.home.join("gate-wt");
    if !wt.exists() {
        r.git(&[
            "worktree",
            "add",
            "-q",
            "-b",
            "gate-wt",
            wt.to_str().unwrap(),
            "main",
        ]);
    }
    let gates = [Gate::new("sh check.sh", "test").unwrap()];
    let env = GateEnv {
        gates: &gates,
        timeout: Duration::from_secs(60),
        repairs: 0,
        cancel: &std::sync::atomic::AtomicBool::new(false),
        on_spawn: None,
    };
    let repo = common::open_isolated(&r.root);
    let logs = r.home.join("logs");
    let at = GateCheckout {
        repo: &repo,
        path: &wt,
        logs_dir: &logs,
    };
    let message =
        |m: &MergeRecord, e: &[Ejected]| format!("rebuilt {} without {}", m.key, e[0].key);
    integration_gate(&env, &at, &[], start, merges, &message, &mut |_| {}).unwrap()
}

fn tree_has(r: &TestRepo, commit: ObjectId, path: &str) -> bool {
    r.git_in(&r.root, &["cat-file", "-e", &format!("{commit}:{path}")])
        .code
        == 0
}

/// A project with the check and `files`, committed as `message` on `main`, and an
/// `integration` branch there; returns it and that commit.
fn project(files: &[(&str, &str)], message: &str) -> (TestRepo, ObjectId) {
    let r = TestRepo::new();
    r.agent_identity();
    r.write("check.sh", CHECK);
    for (path, text) in files {
        r.write(path, text);
    }
    r.commit_all(message);
    let start = id(&r, "main");
    r.git(&["branch", "integration"]);
    (r, start)
}

#[test]
fn the_merge_that_turns_it_red_is_ejected_and_later_work_is_replayed_without_it() {
    let (r, start) = project(&[("routes/home", "GET /\n")], "project");
    let mut merges = Vec::new();
    let a = story(&r, "a", "main", &[("routes/a", "GET /api/items\n")]);
    merge(&r, "a", a, &mut merges);
    let b = story(
        &r,
        "b",
        "main",
        &[("routes/b", "GET /api/items\n"), ("b.txt", "b\n")],
    );
    merge(&r, "b", b, &mut merges);
    // c started after b merged: b is in its history.
    let c = story(&r, "c", "integration", &[("c.txt", "c\n")]);
    merge(&r, "c", c, &mut merges);
    // d also started after b, and changes b's file: it cannot be replayed without b.
    let d = story(&r, "d", "integration", &[("b.txt", "b, improved\n")]);
    merge(&r, "d", d, &mut merges);
    let e = story(&r, "e", "main", &[("e.txt", "e\n")]);
    merge(&r, "e", e, &mut merges);

    let v = run(&r, start, &merges);
    assert!(v.green, "{v:?}");
    let keys: Vec<&str> = v.ejected.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["b", "d"], "{v:?}");
    assert!(
        v.ejected[0].why.contains("turned red"),
        "{}",
        v.ejected[0].why
    );
    assert!(
        v.ejected[1].why.contains("without b"),
        "{}",
        v.ejected[1].why
    );
    let tip = v.new_tip.unwrap();
    for (path, there) in [
        ("routes/a", true),
        ("c.txt", true),
        ("e.txt", true),
        ("routes/b", false),
        ("b.txt", false),
    ] {
        assert_eq!(tree_has(&r, tip, path), there, "{path}");
    }
    // b's commits are not in the rebuilt history, so b can be merged again later.
    let contains_b = r.git_in(
        &r.root,
        &[
            "merge-base",
            "--is-ancestor",
            &b.to_string(),
            &tip.to_string(),
        ],
    );
    assert_eq!(contains_b.code, 1);
    // e never saw b: it is merged with its history; c carries b, so only its change is kept.
    let contains_e = r.git_in(
        &r.root,
        &[
            "merge-base",
            "--is-ancestor",
            &e.to_string(),
            &tip.to_string(),
        ],
    );
    assert_eq!(contains_e.code, 0);
    // The rebuilt tip passes the check, in a real checkout.
    let last = v.runs.last().unwrap();
    assert!(last.passed, "{last:?}");
    assert!(v
        .runs
        .iter()
        .any(|g| !g.passed && g.output_tail.contains("route registered twice")));
}

#[test]
fn a_start_that_is_already_red_blames_no_story() {
    let (r, start) = project(
        &[("routes/x", "GET /dup\n"), ("routes/y", "GET /dup\n")],
        "project, already red",
    );
    let mut merges = Vec::new();
    let a = story(&r, "a", "main", &[("a.txt", "a\n")]);
    merge(&r, "a", a, &mut merges);
    let v = run(&r, start, &merges);
    assert!(!v.green);
    assert!(v.ejected.is_empty());
    assert!(v.new_tip.is_none());
    assert!(v.notes[0].contains("already red"), "{:?}", v.notes);
}
