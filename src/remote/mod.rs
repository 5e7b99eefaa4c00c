//! Stories run beyond this machine (README, "More than one machine"). The data channel is git
//! itself: the orchestrator pushes each story's base to the shared remote, a job anywhere runs
//! `git teleos run-story`, and pushes the story's commits and its result back, all under
//! `refs/teleos/<sid>/`. Only the orchestrator writes the integration branch and lands.
//!
//! This module holds the git side of that contract, for both ends; every git call goes through
//! [`crate::process::Cmd`].

use std::path::Path;
use std::time::Duration;

use crate::error::Error;
use crate::process::{Cmd, Output};

/// Where a session's refs live on the shared remote.
pub fn session_prefix(sid: &str) -> String {
    format!("refs/teleos/{sid}/")
}

/// The base a job starts from.
pub fn base_ref(sid: &str, key: &str) -> String {
    format!("refs/teleos/{sid}/base/{key}")
}

/// The story's commits, as the job left them.
pub fn stories_ref(sid: &str, key: &str) -> String {
    format!("refs/teleos/{sid}/stories/{key}")
}

/// What the agent left uncommitted, saved as a commit on the story's tip.
pub fn uncommitted_ref(sid: &str, key: &str) -> String {
    format!("refs/teleos/{sid}/uncommitted/{key}")
}

/// A commit whose tree holds `result.json` and `agent.log`.
pub fn results_ref(sid: &str, key: &str) -> String {
    format!("refs/teleos/{sid}/results/{key}")
}

/// The file names in a result commit's tree.
pub const RESULT_FILE: &str = "result.json";
pub const LOG_FILE: &str = "agent.log";

/// Network operations get this long before they count as failed (a hung server must not hang
/// a job or the orchestrator forever).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// A story key usable in a ref name: what story file stems look like, nothing git would
/// refuse or read as a path trick.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && !key.starts_with(['.', '-'])
        && !key.ends_with(".lock")
        && !key.contains("..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Run git in `dir` and fail with its stderr when it fails.
pub fn git(dir: &Path, args: &[&str]) -> Result<Output, Error> {
    Ok(Cmd::new("git")
        .args(args)
        .current_dir(dir)
        .timeout(GIT_TIMEOUT)
        .run_checked()?)
}

/// `git … ` with bytes on stdin; returns trimmed stdout.
fn git_stdin(dir: &Path, args: &[&str], input: Vec<u8>) -> Result<String, Error> {
    let out = Cmd::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(input)
        .timeout(GIT_TIMEOUT)
        .run_checked()?;
    Ok(out.stdout_text().trim().to_string())
}

/// Fetch `base` from `url` into the repository at `dir`: blobless (`--filter=blob:none`, the
/// blobs come on demand at checkout) when the server allows it, else a plain fetch of the base
/// commit, else of the session's base ref (servers that refuse to serve a bare commit id).
/// Returns which way worked, for the job's log.
pub fn fetch_base(
    dir: &Path,
    url: &str,
    base: &str,
    base_ref: &str,
) -> Result<&'static str, Error> {
    git(dir, &["remote", "add", "origin", url])?;
    let blobless = git(
        dir,
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--filter=blob:none",
            "origin",
            base,
        ],
    );
    if blobless.is_ok() {
        return Ok("blobless partial fetch");
    }
    if git(dir, &["fetch", "-q", "--no-tags", "origin", base]).is_ok() {
        return Ok("plain fetch of the base commit");
    }
    git(dir, &["fetch", "-q", "--no-tags", "origin", base_ref])?;
    Ok("plain fetch of the base ref")
}

/// Write `files` (name, bytes) as a parentless commit and return its id.
pub fn commit_files(dir: &Path, files: &[(&str, &[u8])], message: &str) -> Result<String, Error> {
    let mut listing = String::new();
    for (name, bytes) in files {
        let blob = git_stdin(dir, &["hash-object", "-w", "--stdin"], bytes.to_vec())?;
        listing.push_str(&format!("100644 blob {blob}\t{name}\n"));
    }
    let tree = git_stdin(dir, &["mktree"], listing.into_bytes())?;
    git_stdin(
        dir,
        &["commit-tree", &tree, "-F", "-"],
        message.as_bytes().to_vec(),
    )
}

/// Push `(commit, ref)` pairs to `url`, all or none (`--atomic`). Every ref must lie under the
/// session's prefix: a job never pushes anywhere else.
pub fn push_refs(
    dir: &Path,
    url: &str,
    sid: &str,
    updates: &[(String, String)],
) -> Result<(), Error> {
    let prefix = session_prefix(sid);
    let mut args: Vec<String> = vec!["push".into(), "-q".into(), "--atomic".into(), url.into()];
    for (commit, name) in updates {
        if !name.starts_with(&prefix) {
            return Err(Error::Internal(format!(
                "refusing to push {name}: outside {prefix}"
            )));
        }
        // Forced: a retried job replaces its own earlier result; nothing else lives there.
        args.push(format!("+{commit}:{name}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    git(dir, &args).map(|_| ())
}

/// The refs under `pattern` on `remote` (`git ls-remote`): (name, id) pairs.
pub fn ls_remote(dir: &Path, remote: &str, pattern: &str) -> Result<Vec<(String, String)>, Error> {
    let out = git(dir, &["ls-remote", remote, pattern])?;
    Ok(out
        .stdout_text()
        .lines()
        .filter_map(|l| {
            let (id, name) = l.split_once('\t')?;
            Some((name.trim().to_string(), id.trim().to_string()))
        })
        .collect())
}

/// The message of a result commit: says which story and where its commits are.
pub fn result_message(sid: &str, key: &str, tip: Option<&str>) -> String {
    let mut m = format!("teleos: result of {key} (session {sid})\n");
    if let Some(t) = tip {
        m.push_str(&format!("\nTeleos-Story-Tip: {t}\n"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fit_in_ref_names() {
        assert!(is_valid_key("1-2-user-login"));
        assert!(is_valid_key("epic_3.story"));
        for bad in [
            "", "../x", "a/b", ".hidden", "-opt", "x.lock", "a b", "a..b", "a:b",
        ] {
            assert!(!is_valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn refs_stay_under_the_session() {
        assert_eq!(base_ref("abc123", "1-1"), "refs/teleos/abc123/base/1-1");
        assert!(stories_ref("abc123", "k").starts_with(&session_prefix("abc123")));
        assert!(results_ref("abc123", "k").starts_with(&session_prefix("abc123")));
    }
}
