//! The worktree pool's default, its cap, its idle age and its disk figure (README, "Idle
//! worktrees"): the real binary, real repositories, a stand-in `claude` replaying Claude Code's
//! result envelope.

use crate::common;

use common::{story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";
const MANIFEST: &str = ".claude/worktrees/manifest.json";

/// Ticks the story's box, writes `out/<key>.txt`, commits, and answers as Claude Code does.
fn install_agent(r: &TestRepo) {
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = auth ]; then echo '{{"loggedIn": true}}'; exit 0; fi
prompt=$(cat)
{story_from_prompt}
sed -i 's/^- \[ \] /- [x] /' "$file"
mkdir -p out && echo "$key" > "out/$key.txt"
git add out "$file" && git commit -qm "teleos: close $key" || exit 1
printf '{{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.1,"result":"{{\\"story_key\\":\\"%s\\",\\"status\\":\\"completed\\",\\"tasks_total\\":10,\\"tasks_completed_by_closer\\":1,\\"tasks_already_done\\":9}}"}}\n' "$key"
"#,
        story_from_prompt = common::STORY_FROM_PROMPT
    );
    r.install_script("claude", &script);
}

fn repo_with(keys: &[&str]) -> TestRepo {
    let r = TestRepo::new();
    r.git(&["config", "user.name", "Agent"]);
    r.git(&["config", "user.email", "agent@example.com"]);
    r.write(".gitignore", "node_modules/\n");
    for key in keys {
        r.write(&format!("{DIR}/{key}.md"), &story(key, 9, 1));
    }
    r.commit_all("stories");
    install_agent(&r);
    r
}

/// The parked worktrees' paths, as git lists them.
fn parked(r: &TestRepo) -> Vec<String> {
    r.git(&["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .filter(|p| p.contains("teleos-pool-"))
        .map(str::to_string)
        .collect()
}

fn manifest(r: &TestRepo) -> serde_json::Value {
    serde_json::from_str(&r.read(MANIFEST)).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn by_default_no_worktree_is_kept() {
    let r = repo_with(&["1-1-a", "1-2-b"]);
    r.teleos(["close", "--parallel", "2", "--all", "--yes"])
        .ok();
    assert!(r.path("out/1-1-a.txt").exists() && r.path("out/1-2-b.txt").exists());
    assert_eq!(parked(&r), Vec::<String>::new());
    assert_eq!(
        r.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    assert_eq!(r.git(&["branch", "--format=%(refname:short)"]), "main");
    assert!(manifest(&r).get("teleos_pool").is_none());
    // status reports the pool's disk use either way: nothing here.
    let j = r.teleos(["status", "--json"]).json();
    assert_eq!(j["pool"]["disk_bytes"], 0, "{j}");
    assert_eq!(j["pool"]["worktrees"], serde_json::json!([]), "{j}");
}

#[test]
fn the_pool_never_holds_more_than_its_cap() {
    let r = repo_with(&["1-1-a", "1-2-b", "1-3-c"]);
    r.git(&["config", "teleos.keepWorktrees", "true"]);
    r.git(&["config", "teleos.poolMax", "2"]);
    r.teleos(["close", "--parallel", "3", "--all", "--yes"])
        .ok();
    for k in ["1-1-a", "1-2-b", "1-3-c"] {
        assert!(r.path(&format!("out/{k}.txt")).exists(), "{k} did not land");
    }
    let kept = parked(&r);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let listed = manifest(&r)["teleos_pool"].as_array().unwrap().len();
    assert_eq!(listed, 2);
    // Only the main checkout and the parked ones; only their branches besides main.
    let all = r.git(&["worktree", "list", "--porcelain"]);
    assert_eq!(
        all.lines().filter(|l| l.starts_with("worktree ")).count(),
        3,
        "{all}"
    );
    let branches = r.git(&["branch", "--format=%(refname:short)"]);
    assert_eq!(branches.lines().count(), 3, "{branches}");
    // A second batch takes them and parks again: still two.
    for k in ["2-1-d", "2-2-e", "2-3-f"] {
        r.write(&format!("{DIR}/{k}.md"), &story(k, 9, 1));
    }
    r.commit_all("more stories");
    r.teleos(["close", "--parallel", "3", "--all", "--yes"])
        .ok();
    assert_eq!(parked(&r).len(), 2, "{:?}", parked(&r));
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
}

#[test]
fn clean_orphans_drops_worktrees_idle_too_long_after_saving_what_they_hold() {
    let r = repo_with(&["1-1-a", "1-2-b"]);
    r.git(&["config", "teleos.keepWorktrees", "true"]);
    r.teleos(["close", "--parallel", "2", "--all", "--yes"])
        .ok();
    let kept = parked(&r);
    assert_eq!(kept.len(), 2, "{kept:?}");
    // One parked three days ago (past the default 48 hours), one an hour ago.
    let mut m = manifest(&r);
    let pool = m["teleos_pool"].as_array_mut().unwrap();
    let (old, young) = (
        pool[0]["path"].as_str().unwrap().to_string(),
        pool[1]["path"].as_str().unwrap().to_string(),
    );
    let old_branch = pool[0]["branch"].as_str().unwrap().to_string();
    pool[0]["parked_at"] = serde_json::json!(now() - 72 * 3600);
    pool[1]["parked_at"] = serde_json::json!(now() - 3600);
    std::fs::write(r.path(MANIFEST), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    // A parked worktree is clean and merged, but someone worked in the old one since.
    let old_dir = std::path::PathBuf::from(&old);
    std::fs::write(old_dir.join("later.txt"), "committed later\n").unwrap();
    let c = r.git_in(&old_dir, &["add", "later.txt"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let c = r.git_in(&old_dir, &["commit", "-qm", "work in an idle worktree"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let commit = r
        .git_in(&old_dir, &["rev-parse", "HEAD"])
        .stdout
        .trim()
        .to_string();
    std::fs::write(old_dir.join("notes.txt"), "not committed\n").unwrap();

    let dry = r.teleos(["clean-orphans", "--dry-run"]);
    dry.ok();
    assert!(
        dry.stderr.contains("would remove idle worktree"),
        "{}",
        dry.stderr
    );
    assert!(old_dir.exists());

    let out = r.teleos(["clean-orphans"]);
    out.ok();
    assert!(
        out.stderr.contains(&format!("removed idle worktree {old}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&young), "{}", out.stderr);
    assert!(!old_dir.exists());
    assert_eq!(parked(&r), vec![young.clone()]);
    let m = manifest(&r);
    let listed = common::strings_of(&m["teleos_pool"], "path");
    assert_eq!(listed, [young.as_str()]);
    // Nothing was lost: the commit and the uncommitted file are on rescue refs.
    let name = old_dir.file_name().unwrap().to_string_lossy().into_owned();
    let base = format!("refs/teleos/rescue/pool/{name}");
    // The snapshot of the uncommitted file sits on the new commit, so one ref keeps both.
    let snap = format!("{base}/uncommitted");
    let anc = r.git_in(&r.root, &["merge-base", "--is-ancestor", &commit, &snap]);
    assert_eq!(anc.code, 0, "{commit} is not kept by {snap}");
    assert_eq!(
        r.git(&["show", &format!("{base}/uncommitted:notes.txt")]),
        "not committed"
    );
    assert_eq!(
        r.git(&["show", &format!("{base}/uncommitted:later.txt")]),
        "committed later"
    );
    let branches = r.git(&["branch", "--format=%(refname:short)"]);
    assert!(!branches.lines().any(|b| b == old_branch), "{branches}");

    // The quiet clean-up before every parallel batch applies the same age.
    let mut m = manifest(&r);
    m["teleos_pool"][0]["parked_at"] = serde_json::json!(now() - 49 * 3600);
    std::fs::write(r.path(MANIFEST), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    r.write(&format!("{DIR}/2-1-c.md"), &story("2-1-c", 9, 1));
    r.commit_all("another story");
    let out = r.teleos(["close", "--parallel", "1", "--all", "--yes"]);
    out.ok();
    assert!(
        out.stderr
            .contains(&format!("removed idle worktree {young}")),
        "{}",
        out.stderr
    );
    assert!(r.path("out/2-1-c.txt").exists());
    let fsck = r.git_in(&r.root, &["fsck", "--no-progress"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
}

#[test]
fn status_reports_the_disk_the_pool_takes() {
    let r = repo_with(&["1-1-a", "1-2-b"]);
    r.teleos([
        "close",
        "--parallel",
        "2",
        "--keep-worktrees",
        "--all",
        "--yes",
    ])
    .ok();
    let kept = parked(&r);
    assert_eq!(kept.len(), 2, "{kept:?}");
    // Installed dependencies in one of them (ignored, so it stays parked as clean).
    let deps = std::path::Path::new(&kept[0]).join("node_modules/big");
    std::fs::create_dir_all(deps.parent().unwrap()).unwrap();
    std::fs::write(&deps, vec![b'x'; 512 * 1024]).unwrap();
    let j = r.teleos(["status", "--json"]).json();
    let pool = &j["pool"];
    let worktrees = pool["worktrees"].as_array().unwrap();
    assert_eq!(worktrees.len(), 2, "{j}");
    let bytes = |p: &str| {
        worktrees
            .iter()
            .find(|w| w["path"] == p)
            .unwrap_or_else(|| panic!("{p} not in {j}"))["disk_bytes"]
            .as_u64()
            .unwrap()
    };
    let (with_deps, without) = (bytes(&kept[0]), bytes(&kept[1]));
    // The admin folder counts too: at least its index is there.
    let gitdir = r.git_in(
        std::path::Path::new(&kept[1]),
        &["rev-parse", "--absolute-git-dir"],
    );
    let index = std::fs::metadata(std::path::Path::new(gitdir.stdout.trim()).join("index"))
        .unwrap()
        .len();
    assert!(index > 0);
    assert!(without > index, "{j}");
    assert!(
        with_deps >= without + 512 * 1024,
        "{with_deps} vs {without}"
    );
    assert_eq!(pool["disk_bytes"].as_u64().unwrap(), with_deps + without);
    assert!(worktrees.iter().all(|w| w["parked_at"].is_string()), "{j}");
    let text = r.teleos(["status"]);
    text.ok();
    assert!(text.stdout.contains("on disk"), "{}", text.stdout);
}
