//! What a batch did, story by story: the data the debrief shows, `--json` prints, and a later
//! `close --retry-blocked` reads back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::batch::timing::{Attempt, Lane};
use crate::error::{Error, Result};

/// How a story ended, after verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every automatable task done and committed.
    Completed,
    /// Some work done, something blocked (or a claim did not hold).
    Partial,
    /// The agent failed: crash, timeout, no result, not logged in mid-batch…
    Error,
    /// The story's work could not be merged; it is kept on a ref.
    Conflict,
    /// Too much left for the closer: recorded for the full pipeline.
    Routed,
    /// Never started (circuit breaker, budget, interrupt, an earlier story left a mess).
    NotStarted,
    /// The project's checks stayed red on the story's work, even after repair: not merged,
    /// its commits kept on a ref.
    GateFailed,
    /// Green alone, but the integrated result turned red with it: ejected before landing,
    /// its work kept on a ref.
    IntegrationFailed,
}

impl Outcome {
    /// Every outcome but these means the story did not complete (exit status 1).
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Completed | Outcome::Routed)
    }
}

impl Outcome {
    /// How the report names the outcome.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Partial => "partially blocked",
            Outcome::Error => "error",
            Outcome::Conflict => "conflict",
            Outcome::Routed => "routed to pipeline",
            Outcome::NotStarted => "not started",
            Outcome::GateFailed => "gate failed",
            Outcome::IntegrationFailed => "integration failed",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockerQuestion {
    pub task: String,
    pub question: String,
    /// Filled in by the user (answers file) for `close --retry-blocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// One story's verified result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoryResult {
    pub story_key: String,
    pub path: PathBuf,
    pub outcome: Outcome,
    pub tasks_total: usize,
    /// Top-level tasks checked after the run (as counted in the file, not as claimed).
    pub tasks_done: usize,
    /// Top-level tasks checked before the run.
    pub tasks_done_before: usize,
    pub tasks_blocked: usize,
    pub unchecked_before: usize,
    pub pct_unchecked: f64,
    pub commit_hash: Option<String>,
    pub error_message: Option<String>,
    pub blocker_questions: Vec<BlockerQuestion>,
    pub human_validation_tasks: Vec<String>,
    /// Claims of the agent that did not hold, and what was done about it.
    pub discrepancies: Vec<String>,
    pub log_path: Option<PathBuf>,
    pub cost_usd: Option<f64>,
    pub duration_secs: f64,
    pub attempts: u32,
    /// Where work that did not land is kept (conflicts, leftovers).
    pub rescue_ref: Option<String>,
    /// The agent's own review summary, when given.
    #[serde(default)]
    pub review_summary: Option<Value>,
    /// The status git-teleos set for the story in `sprint-status.yaml` when it merged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_status: Option<String>,
    /// Verification found the checkout clean after the run (saves walking it again).
    #[serde(skip)]
    pub verified_clean: bool,
    /// The gates run on the story's work, last round last (a red round, then the repaired one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<crate::gate::GateResult>,
    /// Repair rounds the agent was given after a red gate.
    #[serde(default)]
    pub gate_repairs: u32,
    /// The commit every gate passed on, when they did (saves running them again on it).
    #[serde(skip)]
    pub gates_green_at: Option<gix::ObjectId>,
    /// Seconds this story's agent runs waited on rate limits (back-off, the shared pause).
    #[serde(default)]
    pub rate_limit_wait_secs: f64,
    /// Its last run was still turned away by a rate limit: not counted by the circuit breaker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rate_limited: bool,
    /// What the agent CLI reported without failing (e.g. codex error items).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The agent CLI is not authenticated (a setup error: the batch stops).
    #[serde(skip)]
    pub setup_error: Option<String>,
    /// Each attempt with its lane and phases, first to last (empty in older records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Attempt>,
    /// Ctrl-C stopped it (its agent or its gates) before it finished: `close --resume` runs it
    /// again. Older records say so only in `error_message` ([`LEGACY_INTERRUPTED`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// The `error_message` records written before [`StoryResult::interrupted`] existed gave a story
/// Ctrl-C stopped; read only, to resume those sessions.
const LEGACY_INTERRUPTED: &str = "agent failed: cancelled";

impl StoryResult {
    /// A result for a story that did not run (or was routed), with its scan counts.
    /// Whether `close --resume` should run this story again: it never started, or Ctrl-C
    /// stopped it.
    pub fn unfinished(&self) -> bool {
        self.outcome == Outcome::NotStarted
            || self.interrupted
            || self.error_message.as_deref() == Some(LEGACY_INTERRUPTED)
    }

    pub fn not_run(story: &crate::stories::Story, outcome: Outcome, why: Option<String>) -> Self {
        StoryResult {
            story_key: story.story_key.clone(),
            path: story.path.clone(),
            outcome,
            tasks_total: story.total,
            tasks_done: story.checked,
            tasks_done_before: story.checked,
            tasks_blocked: 0,
            unchecked_before: story.unchecked,
            pct_unchecked: story.pct_unchecked,
            commit_hash: None,
            error_message: why,
            blocker_questions: Vec::new(),
            human_validation_tasks: story.human_validation_tasks.clone(),
            discrepancies: Vec::new(),
            log_path: None,
            cost_usd: None,
            duration_secs: 0.0,
            attempts: 0,
            rescue_ref: None,
            review_summary: None,
            tracker_status: None,
            verified_clean: false,
            gates: Vec::new(),
            gate_repairs: 0,
            gates_green_at: None,
            rate_limit_wait_secs: 0.0,
            rate_limited: false,
            warnings: Vec::new(),
            setup_error: None,
            timeline: Vec::new(),
            interrupted: false,
        }
    }
}

/// A whole batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchReport {
    pub session_id: String,
    pub mode: String,
    pub agent: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The branch the batch landed on (or was started from).
    pub branch: Option<String>,
    pub stories: Vec<StoryResult>,
    /// Why the batch stopped early, if it did.
    pub stopped: Option<String>,
    /// Notes for the user about landing, leftovers, how to finish by hand.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The work was meant to land on the starting branch but did not (the notes say why).
    #[serde(default)]
    pub not_landed: bool,
    /// The gates of the batch (`$ command (why)`), or why none ran.
    #[serde(default)]
    pub gate_plan: Vec<String>,
    /// Set when no gate ran: what the debrief says instead.
    #[serde(default)]
    pub gates_off: Option<String>,
    /// Every run of the gates on the integrated result (parallel mode), bisection included.
    #[serde(default)]
    pub integration_gates: Vec<crate::gate::GateResult>,
    /// Parallel mode: what the start governor did (rate limits, the concurrency limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governor: Option<crate::batch::governor::GovernorSummary>,
    /// The agent CLI said it is not authenticated before any work was done: the batch undid
    /// what it created and ends as a setup error (nothing is recorded).
    #[serde(skip)]
    pub setup_error: Option<String>,
    /// When the batch started and finished, Unix ms (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// Each worktree slot's own phases (set-up, waits); empty in sequential mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<Lane>,
}

impl BatchReport {
    pub fn total_cost(&self) -> Option<f64> {
        let costs: Vec<f64> = self.stories.iter().filter_map(|s| s.cost_usd).collect();
        (!costs.is_empty()).then(|| costs.iter().sum())
    }

    /// No story has left anything behind: no commit, nothing kept on a ref, nothing routed.
    pub fn no_work_done(&self) -> bool {
        self.stories.iter().all(|s| {
            matches!(s.outcome, Outcome::Error | Outcome::NotStarted)
                && s.commit_hash.is_none()
                && s.rescue_ref.is_none()
        })
    }

    /// Seconds the stories' agents waited on rate limits, summed over stories.
    pub fn rate_limit_wait_secs(&self) -> f64 {
        self.stories.iter().map(|s| s.rate_limit_wait_secs).sum()
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.stories.iter().filter(|s| s.outcome == o).count()
    }

    /// Questions the agents asked, over all stories.
    pub fn blocker_questions(&self) -> usize {
        self.stories.iter().map(|s| s.blocker_questions.len()).sum()
    }

    /// Unchecked tasks that only a human can do, over all stories.
    pub fn human_validation_tasks(&self) -> usize {
        self.stories
            .iter()
            .map(|s| s.human_validation_tasks.len())
            .sum()
    }

    /// Seconds spent running gates, on stories and on the integration.
    pub fn gate_secs(&self) -> f64 {
        self.stories
            .iter()
            .flat_map(|s| &s.gates)
            .chain(&self.integration_gates)
            .map(|g| g.duration_secs)
            .sum()
    }

    /// 0 when every selected closeable story completed; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let incomplete = self.stories.iter().any(|s| s.outcome.is_failure());
        u8::from(incomplete || self.stopped.is_some() || self.not_landed)
    }

    /// The source workflow's `batch_results` shape, with extra fields per entry.
    pub fn to_batch_results(&self) -> Value {
        let of = |o: Outcome| self.stories.iter().filter(move |s| s.outcome == o);
        let extras = |s: &StoryResult| {
            json!({
                "log_path": s.log_path,
                "cost_usd": s.cost_usd,
                "duration_secs": s.duration_secs,
                "attempts": s.attempts,
                "rate_limit_wait_secs": s.rate_limit_wait_secs,
                "warnings": s.warnings,
                "discrepancies": s.discrepancies,
                "rescue_ref": s.rescue_ref,
                "gates": s.gates,
                "gate_repairs": s.gate_repairs,
                "tracker_status": s.tracker_status,
            })
        };
        let merge = |mut a: Value, b: Value| {
            if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
                a.extend(b);
            }
            a
        };
        json!({
            "session_id": self.session_id,
            "mode": self.mode,
            "agent": self.agent,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "branch": self.branch,
            "completed": of(Outcome::Completed).map(|s| merge(json!({
                "story_key": s.story_key,
                "tasks_completed": s.tasks_done,
                "tasks_total": s.tasks_total,
                "commit_hash": s.commit_hash,
            }), extras(s))).collect::<Vec<_>>(),
            "blocked": of(Outcome::Partial).map(|s| merge(json!({
                "story_key": s.story_key,
                "tasks_completed": s.tasks_done,
                "tasks_total": s.tasks_total,
                "blocked_tasks": s.tasks_blocked,
                "commit_hash": s.commit_hash,
            }), extras(s))).collect::<Vec<_>>(),
            "routed_to_pipeline": of(Outcome::Routed).map(|s| json!({
                "story_key": s.story_key,
                "unchecked_count": s.unchecked_before,
                "tasks_total": s.tasks_total,
                "pct_unchecked": s.pct_unchecked,
            })).collect::<Vec<_>>(),
            "blocker_questions": self.stories.iter().flat_map(|s| s.blocker_questions.iter().map(move |q| json!({
                "story_key": s.story_key,
                "task": q.task,
                "question": q.question,
            }))).collect::<Vec<_>>(),
            "human_validation_tasks": self.stories.iter().flat_map(|s| s.human_validation_tasks.iter().map(move |t| json!({
                "story_key": s.story_key,
                "task_text": t,
            }))).collect::<Vec<_>>(),
            "errors": self.stories.iter().filter(|s| matches!(s.outcome, Outcome::Error | Outcome::Conflict | Outcome::NotStarted | Outcome::GateFailed | Outcome::IntegrationFailed)).map(|s| merge(json!({
                "story_key": s.story_key,
                "error_message": s.error_message.clone().unwrap_or_else(|| s.outcome.label().to_string()),
                "outcome": s.outcome,
            }), extras(s))).collect::<Vec<_>>(),
            "summary": {
                "selected": self.stories.len(),
                "completed": self.count(Outcome::Completed),
                "partial": self.count(Outcome::Partial),
                "routed": self.count(Outcome::Routed),
                // As many as the "errors" list holds; conflicts, not started and red gates are
                // among them.
                "errors": self.count(Outcome::Error) + self.count(Outcome::Conflict) + self.count(Outcome::NotStarted) + self.count(Outcome::GateFailed) + self.count(Outcome::IntegrationFailed),
                "conflicts": self.count(Outcome::Conflict),
                "not_started": self.count(Outcome::NotStarted),
                "gate_failed": self.count(Outcome::GateFailed),
                "integration_failed": self.count(Outcome::IntegrationFailed),
                "gate_secs": self.gate_secs(),
                "blocker_questions": self.blocker_questions(),
                "human_validation_tasks": self.human_validation_tasks(),
                "cost_usd": self.total_cost(),
                "rate_limit_wait_secs": self.rate_limit_wait_secs(),
            },
            "governor": self.governor,
            "stopped": self.stopped,
            "not_landed": self.not_landed,
            "gates": self.gate_plan,
            "gates_off": self.gates_off,
            "integration_gates": self.integration_gates,
            "notes": self.notes,
        })
    }
}

/// Where batches are saved: inside the git dir, so nothing appears in anyone's work tree.
pub fn results_dir(common_dir: &Path) -> PathBuf {
    common_dir.join("teleos")
}

/// Save a batch (atomically) as `<common>/teleos/batches/<sid>.json` and `last-batch.json`.
pub fn save(common_dir: &Path, report: &BatchReport) -> Result<PathBuf> {
    let dir = results_dir(common_dir).join("batches");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let text = serde_json::to_vec_pretty(report)
        .map_err(|e| Error::usage(format!("cannot encode batch results: {e}")))?;
    let path = dir.join(format!("{}.json", report.session_id));
    crate::fsutil::write_atomic(&path, &text)?;
    crate::fsutil::write_atomic(&results_dir(common_dir).join("last-batch.json"), &text)?;
    Ok(path)
}

/// The last batch saved in this repository.
pub fn load_last(common_dir: &Path) -> Result<Option<BatchReport>> {
    let path = results_dir(common_dir).join("last-batch.json");
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        Error::usage_hint(
            format!("{} is not a valid batch record: {e}", path.display()),
            "run a new batch with git teleos close",
        )
    })
}

/// The saved record of session `sid`.
pub fn load_session(common_dir: &Path, sid: &str) -> Result<BatchReport> {
    let valid = !sid.is_empty()
        && sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Error::usage_hint(
            format!("'{sid}' is not a session id"),
            "list the batches with git teleos history",
        ));
    }
    let path = results_dir(common_dir)
        .join("batches")
        .join(format!("{sid}.json"));
    let text = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage_hint(
                format!("no batch with session id {sid} in this repository"),
                "list the batches with git teleos history",
            )
        } else {
            Error::io(format!("reading {}", path.display()), e)
        }
    })?;
    parse_record(&path, &text)
}

fn parse_record(path: &Path, text: &[u8]) -> Result<BatchReport> {
    serde_json::from_slice(text).map_err(|e| {
        Error::usage_hint(
            format!("{} is not a valid batch record: {e}", path.display()),
            "run a new batch with git teleos close",
        )
    })
}

/// One file of `batches/`: its record, or why it cannot be read.
pub struct Record {
    pub path: PathBuf,
    pub report: Result<BatchReport>,
    /// When the file was last written (Unix seconds), to order records that cannot be read.
    pub modified: i64,
}

/// Every saved batch record (`batches/*.json`), readable or not, in no particular order.
pub fn load_all(common_dir: &Path) -> Result<Vec<Record>> {
    let dir = results_dir(common_dir).join("batches");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let report = std::fs::read(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))
            .and_then(|t| parse_record(&path, &t));
        out.push(Record {
            path,
            report,
            modified,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as written before timing existed: no `timeline`, `lanes`, `started_ms`.
    const OLD_RECORD: &str = r#"{
      "session_id": "a1b2c3", "mode": "parallel (2 worktrees)", "agent": "claude",
      "started_at": "2026-11-30T10:00:00Z", "finished_at": "2026-11-30T10:04:10Z",
      "branch": "refs/heads/main", "stopped": null, "notes": ["landed on main"],
      "not_landed": false,
      "stories": [{
        "story_key": "1-2-login", "path": "docs/stories/1-2-login.md", "outcome": "completed",
        "tasks_total": 5, "tasks_done": 5, "tasks_done_before": 3, "tasks_blocked": 0,
        "unchecked_before": 2, "pct_unchecked": 40.0, "commit_hash": "0123456789abcdef",
        "error_message": null, "blocker_questions": [], "human_validation_tasks": [],
        "discrepancies": [], "log_path": "/tmp/x.log", "cost_usd": 0.25,
        "duration_secs": 130.0, "attempts": 1, "rescue_ref": null
      }]
    }"#;

    #[test]
    fn records_without_timing_still_load_and_render() {
        let r: BatchReport = serde_json::from_str(OLD_RECORD).unwrap();
        assert!(r.stories[0].timeline.is_empty() && r.lanes.is_empty());
        assert_eq!(r.started_ms, None);
        let t = crate::report::timeline::totals(&r);
        assert_eq!(t.wall_secs, Some(250.0));
        assert_eq!(t.agent_secs, 130.0);
        let html = crate::report::html::render(&r);
        assert!(
            html.contains("1-2-login") && html.contains("$0.25"),
            "{html}"
        );
        assert!(html.contains("No timing in this record"), "{html}");
        let mut text = Vec::new();
        crate::report::timeline::write_text(&mut text, &r, 80, false).unwrap();
        assert!(text.is_empty(), "no timeline without timing");
        // Written again, the new fields stay out of an old record's shape.
        let again = serde_json::to_value(&r).unwrap();
        assert!(again.get("lanes").is_none() && again.get("started_ms").is_none());
    }

    #[test]
    fn resume_knows_an_interrupted_story_by_its_flag_and_in_old_records_by_its_message() {
        let old: BatchReport = serde_json::from_str(OLD_RECORD).unwrap();
        let mut s = old.stories[0].clone();
        assert!(!s.unfinished(), "a completed story is finished");
        // A record written before the flag existed.
        s.outcome = Outcome::Error;
        s.error_message = Some("agent failed: cancelled".into());
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("interrupted").is_none());
        let back: StoryResult = serde_json::from_value(v).unwrap();
        assert!(!back.interrupted && back.unfinished());
        // A new record: the flag decides, whatever the message says.
        s.error_message = Some("agent failed: stopped by the user".into());
        assert!(!s.unfinished());
        s.interrupted = true;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["interrupted"], true);
        let back: StoryResult = serde_json::from_value(v).unwrap();
        assert!(back.unfinished());
        // Another failure is not run again.
        s.interrupted = false;
        s.error_message = Some("agent failed: exit 1".into());
        assert!(!s.unfinished());
        assert!(StoryResult::not_run(&story_of(&s), Outcome::NotStarted, None).unfinished());
    }

    fn story_of(r: &StoryResult) -> crate::stories::Story {
        let mut story =
            crate::batch::test_story(&r.story_key, crate::stories::Category::Closeable, &[]);
        story.path = r.path.clone();
        story
    }
}
