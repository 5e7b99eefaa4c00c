//! Who signs the commits and reflog entries this module writes.

use gix::Repository;

use crate::error::Result;

const FALLBACK_NAME: &str = "git-teleos";
const FALLBACK_EMAIL: &str = "git-teleos@localhost";

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
