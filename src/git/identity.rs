//! Who signs the commits and reflog entries this module writes.

use gix::Repository;

use crate::error::{Error, Result};

const FALLBACK_NAME: &str = "git-teleos";
const FALLBACK_EMAIL: &str = "git-teleos@localhost";

/// Refuse to start when git would not know who commits: no `user.*`, `author.*`/`committer.*`
/// nor `GIT_AUTHOR_*`/`GIT_COMMITTER_*`. git itself refuses to commit then, so the agents'
/// commits would fail, and gix cannot even write the reflog of a new worktree. Checked before
/// anything is created, so nothing is left to clean up.
pub fn require_identity(repo: &Repository) -> Result<()> {
    let missing: Vec<&str> = [
        ("author", repo.author().is_none_or(|a| a.is_err())),
        ("committer", repo.committer().is_none_or(|c| c.is_err())),
    ]
    .into_iter()
    .filter_map(|(who, missing)| missing.then_some(who))
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!(
            "{} identity unknown: git-teleos and its agents make commits, and git does not know who you are",
            if missing.len() == 2 {
                "author and committer".to_string()
            } else {
                missing[0].to_string()
            }
        ),
        hints: vec![
            "tell git who you are, then run again:".into(),
            "  git config user.name \"Your Name\"".into(),
            "  git config user.email \"you@example.com\"".into(),
            "(add --global to set it for every repository; nothing was started)".into(),
        ],
    })
}

/// Author of commits we create: `GIT_AUTHOR_*`, `author.*`, `user.*`, then our fallback.
pub(crate) fn author(repo: &Repository) -> Result<gix::actor::Signature> {
    build(repo.author(), "GIT_AUTHOR_DATE")
}

/// Committer of commits and reflog entries: `GIT_COMMITTER_*`, `committer.*`, `user.*`, fallback.
pub(crate) fn committer(repo: &Repository) -> Result<gix::actor::Signature> {
    build(repo.committer(), "GIT_COMMITTER_DATE")
}

fn build(
    configured: Option<gix::Result<gix::actor::SignatureRef<'_>>>,
    date_var: &str,
) -> Result<gix::actor::Signature> {
    // gix computes the signature time once per handle when no date is configured, so a
    // long-lived handle would stamp every commit with its first use: take "now" ourselves
    // unless the environment pins the date (tests, reproducible runs).
    let date_pinned = std::env::var_os(date_var).is_some_and(|v| !v.is_empty());
    let now = gix::date::Time::now_local_or_utc();
    match configured {
        Some(Ok(sig)) => {
            let time = if date_pinned {
                sig.time().unwrap_or(now)
            } else {
                now
            };
            Ok(gix::actor::Signature {
                name: sig.name.into(),
                email: sig.email.into(),
                time,
            })
        }
        // No identity configured (or an unparsable date): git would refuse; we sign as ourselves.
        _ => Ok(gix::actor::Signature {
            name: FALLBACK_NAME.into(),
            email: FALLBACK_EMAIL.into(),
            time: now,
        }),
    }
}

/// Commit messages end with a newline, as git writes them.
pub(crate) fn commit_message(message: &str) -> String {
    let mut message = message.trim_end().to_string();
    message.push('\n');
    message
}
