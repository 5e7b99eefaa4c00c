//! When things happened in a batch: each story attempt with its lane (worktree slot) and an
//! open list of phases, and each lane's own phases (worktree set-up, waiting for a dependency).
//! The HTML report and the terminal timeline draw these; `history` sums them.
//!
//! Times are Unix milliseconds (UTC). Phase names are an open set so other parts of the batch
//! can add theirs without a schema change: the ones written today are [`SETUP`], [`AGENT`],
//! [`MERGE`], [`RESOLVE`], [`PIPELINE`] and [`WAIT_DEPENDENCY`]; gates add `gate`, the rate
//! governor `rate_limit_wait`. Readers must accept names they do not know.
//! Every field has a serde default: records written before timing existed still load.

use serde::{Deserialize, Serialize};

/// Preparing the checkout for a story (or creating a slot's worktree, on a lane).
pub const SETUP: &str = "setup";
/// The agent CLI running.
pub const AGENT: &str = "agent";
/// Merging the story's branch into the integration branch.
pub const MERGE: &str = "merge";
/// `--resolve`: the agent resolving a merge conflict.
pub const RESOLVE: &str = "resolve";
/// A routed story's pipeline command.
pub const PIPELINE: &str = "pipeline";
/// A lane idle because the stories left wait for dependencies still running elsewhere.
pub const WAIT_DEPENDENCY: &str = "wait_dependency";
/// The project's checks (`teleos.gate`) on a story's work.
pub const GATE: &str = "gate";
/// The agent fixing what a red gate showed (a repair round).
pub const REPAIR: &str = "repair";
/// An agent start held back by the governor: staggered starts, a provider's rate limit.
pub const RATE_LIMIT_WAIT: &str = "rate_limit_wait";

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    crate::time::now_ms()
}

/// One phase: a name and when it started and ended (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub phase: String,
    pub start: i64,
    pub end: i64,
    /// A short note (which gate, which dependency, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Phase {
    /// A phase that started at `start` and ends now.
    pub fn until_now(phase: &str, start: i64) -> Self {
        Phase {
            phase: phase.to_string(),
            start,
            end: now_ms().max(start),
            detail: None,
        }
    }
}

/// One attempt at a story: the first run, or a retry (each retry is its own attempt).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first run, 2 for the first retry, …
    #[serde(default)]
    pub attempt: u32,
    /// The worktree slot (1-based) that ran it; `None` is the user's own checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<u32>,
    #[serde(default)]
    pub start: i64,
    #[serde(default)]
    pub end: i64,
    /// How this attempt ended: an outcome name (`completed`, `error`, `conflict`, …). Open, like
    /// phase names, so new outcomes need no schema change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<std::path::PathBuf>,
    #[serde(default)]
    pub phases: Vec<Phase>,
}

impl Attempt {
    /// Add a phase, widening the attempt to cover it.
    pub fn push(&mut self, phase: Phase) {
        if self.phases.is_empty() && self.start == 0 {
            self.start = phase.start;
        }
        self.start = self.start.min(phase.start);
        self.end = self.end.max(phase.end);
        self.phases.push(phase);
    }

    pub fn duration_ms(&self) -> i64 {
        (self.end - self.start).max(0)
    }
}

/// A worktree slot's own phases (set-up, waits), outside any story.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    /// 1-based slot number.
    pub lane: u32,
    #[serde(default)]
    pub phases: Vec<Phase>,
}

/// The outcome name as written in records (`completed`, `not_started`, …).
pub fn outcome_name(o: crate::batch::results::Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{o:?}").to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::results::Outcome;

    #[test]
    fn attempts_widen_to_their_phases() {
        let mut a = Attempt::default();
        a.push(Phase {
            phase: AGENT.into(),
            start: 1_000,
            end: 5_000,
            detail: None,
        });
        a.push(Phase {
            phase: SETUP.into(),
            start: 500,
            end: 1_000,
            detail: None,
        });
        assert_eq!((a.start, a.end, a.duration_ms()), (500, 5_000, 4_500));
    }

    #[test]
    fn unknown_phase_names_and_missing_fields_load() {
        let a: Attempt =
            serde_json::from_str(r#"{"phases":[{"phase":"gate","start":1,"end":2}]}"#).unwrap();
        assert_eq!(a.phases[0].phase, "gate");
        assert_eq!(a.lane, None);
        assert_eq!(outcome_name(Outcome::NotStarted), "not_started");
    }
}
