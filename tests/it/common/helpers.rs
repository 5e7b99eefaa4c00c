//! Small helpers several test files share: repositories with stories, reading what a batch
//! left (worktrees, JSON lists, line files).

use std::path::{Path, PathBuf};

use super::{story, Run, TestRepo};

/// Where the tests keep their stories.
pub const STORIES: &str = "docs/sprint-artifacts";

/// A repository with an `Agent` identity and one story per key (9 tasks done, 1 left) under
/// [`STORIES`], committed as "stories".
pub fn repo_with_stories(keys: &[&str]) -> TestRepo {
    let r = TestRepo::new();
    r.agent_identity();
    for key in keys {
        r.write(&format!("{STORIES}/{key}.md"), &story(key, 9, 1));
    }
    r.commit_all("stories");
    r
}

impl TestRepo {
    /// A bare clone of the repository as its `origin`, the shared remote the remote runners'
    /// jobs push to (`<home>/shared.git`, returned).
    pub fn with_shared_remote(&self) -> std::path::PathBuf {
        let bare = self.home.join("shared.git");
        let run = self.git_in(
            &self.home,
            &[
                "clone",
                "-q",
                "--bare",
                self.root.to_str().unwrap(),
                "shared.git",
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        self.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
        bare
    }

    /// Set `user.name`/`user.email` in the repository (agents commit as "Agent").
    pub fn agent_identity(&self) {
        self.git(&["config", "user.name", "Agent"]);
        self.git(&["config", "user.email", "agent@example.com"]);
    }

    /// Run `git teleos close --all --yes --json` with `flags` (mode, retries, …) and no prompts.
    pub fn close_all(&self, flags: &[&str]) -> super::Run {
        let mut args = vec!["close", "--all", "--yes", "--json"];
        args.extend_from_slice(flags);
        self.teleos(args)
    }

    /// How many worktrees git lists, the main one included.
    pub fn worktree_count(&self) -> usize {
        self.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count()
    }

    /// Add a linked worktree `linked` next to the repository on a new branch `side`.
    pub fn add_linked_worktree(&self) -> PathBuf {
        let linked = self
            .root
            .parent()
            .expect("repo has a parent")
            .join("linked");
        self.git(&[
            "worktree",
            "add",
            "-q",
            "-b",
            "side",
            linked.to_str().expect("UTF-8 temp path"),
        ]);
        linked
    }
}

/// The entry of a JSON list of stories whose `story_key` is `key`; panics if there is none.
#[track_caller]
pub fn entry<'a>(list: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|s| s["story_key"] == key)
        .unwrap_or_else(|| panic!("{key} not in {list}"))
}

/// The string `field` of every object in the JSON array `array`; panics on any other shape.
#[track_caller]
pub fn strings_of<'a>(array: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    array
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {array}"))
        .iter()
        .map(|item| {
            item[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field} in {item}"))
        })
        .collect()
}

/// The most agents running at once, as the stand-ins that count them wrote it (one number a
/// line in `agents/concurrency` under the test's home); 0 when none ran.
pub fn max_concurrency(r: &TestRepo) -> usize {
    lines(&r.home.join("agents/concurrency"))
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// The lines of a file, none if it does not exist.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The batch record of session `sid` (`.git/teleos/batches/<sid>.json`), as text.
pub fn batch_record(r: &TestRepo, sid: &str) -> String {
    std::fs::read_to_string(r.path(&format!(".git/teleos/batches/{sid}.json")))
        .unwrap_or_else(|e| panic!("batch record of {sid}: {e}"))
}

impl Run {
    /// Assert that stderr contains `text` (and show stderr if not).
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Run {
        output_has("stderr", &self.stderr, text);
        self
    }

    /// Assert that stdout contains `text` (and show stdout if not).
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Run {
        output_has("stdout", &self.stdout, text);
        self
    }
}

#[track_caller]
fn output_has(name: &str, output: &str, text: &str) {
    assert!(output.contains(text), "{text:?} not in {name}:\n{output}");
}

/// The refs of the remote at `url` (`git ls-remote`), name to id.
pub fn remote_refs(r: &TestRepo, url: &str) -> std::collections::BTreeMap<String, String> {
    let out = r.git_in(&r.home, &["ls-remote", url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, name)| (name.to_string(), id.to_string()))
        .collect()
}

/// After a remote batch: the remote's branches are as in `before`, and of the session's refs
/// only those of the story whose name ends with `kept` are left (the others landed).
pub fn assert_remote_keeps_only(
    r: &TestRepo,
    url: &str,
    before: &std::collections::BTreeMap<String, String>,
    kept: &str,
) {
    let after = remote_refs(r, url);
    let branches = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| !k.starts_with("refs/teleos/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(branches(&after), branches(before));
    let left: Vec<&String> = after
        .keys()
        .filter(|k| k.starts_with("refs/teleos/"))
        .collect();
    assert!(!left.is_empty(), "the crash's result is kept");
    assert!(
        left.iter().all(|k| k.ends_with(kept)),
        "refs of landed stories left: {left:?}"
    );
}
