//! Every ref, branch and worktree name git-teleos makes, in one place (ARCHITECTURE.md,
//! "Invariants": which refs are ours). Clean-up and `status` recognise git-teleos's branches by
//! these names, so a name changes here or nowhere.
//!
//! Work kept aside lives under one namespace, `refs/teleos/rescue/<sid>/…`: a story's commits
//! that did not land, an agent's uncommitted changes, an integration tip moved behind the
//! batch's back, the integration as merged before the gate took a merge out, and what
//! `clean-orphans` saves from a dead session. Before this, the refs a batch made lived under
//! `refs/teleos/<sid>/…` ([`LEGACY_PREFIX`]); nothing writes there any more, but listings name
//! both so work kept by an older git-teleos stays findable.

/// Namespace of every ref that keeps work aside (`refs/teleos/rescue/<sid>/…`).
pub const RESCUE_PREFIX: &str = "refs/teleos/rescue";

/// Where batches of older git-teleos versions kept work: `refs/teleos/<sid>/…` (read only).
/// Being the parent of [`RESCUE_PREFIX`] too, `git for-each-ref refs/teleos/` lists both.
pub const LEGACY_PREFIX: &str = "refs/teleos";

/// The branch a parallel session merges its stories into.
pub fn integration_branch(sid: &str) -> String {
    format!("integration-{sid}")
}

/// The full ref of [`integration_branch`].
pub fn integration_ref(sid: &str) -> String {
    format!("refs/heads/{}", integration_branch(sid))
}

/// The branch of a session's worktree slot `n`.
pub fn worktree_branch(sid: &str, n: usize) -> String {
    format!("worktree/teleos-{sid}-{n}")
}

/// The folder name of a session's worktree slot `n`.
pub fn worktree_name(sid: &str, n: usize) -> String {
    format!("{}{n}", worktree_name_prefix(sid))
}

/// What every worktree folder name of session `sid` starts with.
pub fn worktree_name_prefix(sid: &str) -> String {
    format!("teleos-{sid}-")
}

/// The folder name of parked worktree `k` (kept between batches).
pub fn pool_worktree_name(k: usize) -> String {
    format!("teleos-pool-{k}")
}

/// The branch of parked worktree `k`.
pub fn pool_branch(k: usize) -> String {
    format!("worktree/teleos-pool-{k}")
}

/// Ref keeping a story's work that did not land (conflict, error, leftovers): the story key,
/// made safe for a ref name, then `what` (`""`, `-head`, `-uncommitted`, …).
pub fn rescue_ref(sid: &str, key: &str, what: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{RESCUE_PREFIX}/{sid}/{safe}{what}")
}

/// Where work found in a parked worktree is kept before the pool drops it.
pub fn pool_rescue_prefix(name: &str) -> String {
    // `pool` is no session id (those are hex), so it cannot clash with a session's refs.
    format!("{RESCUE_PREFIX}/pool/{name}")
}

/// Ref keeping something of the session as a whole (`integration-moved`,
/// `integration-before-gate`).
pub fn session_ref(sid: &str, what: &str) -> String {
    format!("{RESCUE_PREFIX}/{sid}/{what}")
}

/// Ref where `clean-orphans` keeps a dead session's work: `kind` is `branches`, `head` or
/// `uncommitted`, `name` the branch or worktree it came from.
pub fn orphan_rescue_ref(sid: &str, kind: &str, name: &str) -> String {
    format!("{RESCUE_PREFIX}/{sid}/{kind}/{name}")
}

/// The prefixes under which work of session `sid` may be kept: the current namespace, then
/// the one older versions wrote (for listings; nothing new goes there).
pub fn kept_work_prefixes(sid: &str) -> [String; 2] {
    [
        format!("{RESCUE_PREFIX}/{sid}/"),
        format!("{LEGACY_PREFIX}/{sid}/"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_documented_ones() {
        assert_eq!(integration_branch("abc123"), "integration-abc123");
        assert_eq!(integration_ref("abc123"), "refs/heads/integration-abc123");
        assert_eq!(worktree_branch("abc123", 2), "worktree/teleos-abc123-2");
        assert_eq!(worktree_name("abc123", 2), "teleos-abc123-2");
        assert_eq!(pool_worktree_name(1), "teleos-pool-1");
        assert_eq!(pool_branch(1), "worktree/teleos-pool-1");
    }

    #[test]
    fn every_kept_ref_is_under_the_rescue_namespace() {
        let all = [
            rescue_ref("abc123", "1-2-x", "-uncommitted"),
            session_ref("abc123", "integration-moved"),
            orphan_rescue_ref("abc123", "branches", "worktree/teleos-abc123-1"),
        ];
        for r in &all {
            assert!(r.starts_with("refs/teleos/rescue/abc123/"), "{r}");
        }
        assert!(all[0].starts_with(&kept_work_prefixes("abc123")[0]));
    }

    #[test]
    fn a_story_key_is_made_safe_for_a_ref_name() {
        assert_eq!(
            rescue_ref("abc123", "1-2 a:b~c", ""),
            "refs/teleos/rescue/abc123/1-2_a_b_c"
        );
    }
}
