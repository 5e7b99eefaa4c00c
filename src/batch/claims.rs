//! Claiming a story before its agent starts, in either mode, so that sessions started together
//! on the same stories run each one once (see [`crate::manifest::claim_story`]).

use std::path::Path;

use crate::batch::results::{Outcome, StoryResult};
use crate::git::{self, ObjectId};
use crate::manifest::{claim_story, ManifestFile};
use crate::stories::Story;

/// Where a session stands, for claiming its stories.
pub struct Claimer<'a> {
    pub manifest: &'a ManifestFile,
    /// The worktrees folder (session locks live there).
    pub dir: &'a Path,
    pub session_id: &'a str,
    /// The branch the batch started on (`refs/heads/…`) and its tip then.
    pub branch: Option<&'a str>,
    pub start: Option<ObjectId>,
}

impl Claimer<'_> {
    /// Claim `story`: `None` when it is ours to run, else the result of a story skipped and why
    /// (the session that has it, or that it was closed on the branch meanwhile). A manifest that
    /// cannot be read is an error for the story, never a silent run.
    pub fn claim(&self, repo: &gix::Repository, story: &Story) -> Option<StoryResult> {
        let still_open = || self.closed_meanwhile(repo, story);
        let claim = claim_story(
            self.manifest,
            self.dir,
            self.session_id,
            &story.story_key,
            crate::manifest::DEFAULT_STALE_HOURS,
            still_open,
        );
        let why = match claim {
            Ok(c) => c.skip_reason()?,
            Err(e) => format!("could not claim the story in the session manifest: {e}"),
        };
        Some(StoryResult::not_run(story, Outcome::NotStarted, Some(why)))
    }

    /// The story file changed on the starting branch since the batch started: another session
    /// closed the story and has finished (its claim is gone with it).
    fn closed_meanwhile(&self, repo: &gix::Repository, story: &Story) -> Option<String> {
        let (branch, start) = (self.branch?, self.start?);
        let tip = git::resolve_ref(repo, branch).ok().flatten()?;
        if tip == start {
            return None;
        }
        let before = git::path_id_at(repo, start, &story.path).ok()?;
        let now = git::path_id_at(repo, tip, &story.path).ok()?;
        (before != now).then(|| {
            format!(
                "{} changed on {} since this batch started (closed by another session?); not run twice",
                story.path.display(),
                branch.trim_start_matches("refs/heads/")
            )
        })
    }
}
