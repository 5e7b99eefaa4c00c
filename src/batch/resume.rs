//! What `close --resume` and `close --retry-blocked` run again, read from the batch records
//! under `.git/teleos/`: the stories an interrupted session did not finish, or those the last
//! batch left partial with the user's answers to their blocker questions.

use std::collections::BTreeMap;

use crate::batch::results::{self, BatchReport, BlockerQuestion, Outcome};
use crate::batch::select::Request;
use crate::batch::worker::Answers;
use crate::error::Error;

/// Stories an interrupted session did not finish, and the results it did finish.
pub fn resume_request(
    common_dir: &std::path::Path,
    sid: &str,
) -> Result<(Request, Vec<crate::batch::results::StoryResult>), Error> {
    if !crate::manifest::is_valid_sid(sid) {
        return Err(Error::usage(format!(
            "'{sid}' is not a session id (6 lowercase hex characters)"
        )));
    }
    let path = results::results_dir(common_dir)
        .join("batches")
        .join(format!("{sid}.json"));
    let text = std::fs::read(&path).map_err(|_| {
        Error::usage_hint(
            format!("no record of session {sid}"),
            "git teleos status lists the sessions",
        )
    })?;
    let last: BatchReport = serde_json::from_slice(&text)
        .map_err(|e| Error::usage(format!("{} is not a batch record: {e}", path.display())))?;
    let unfinished = |s: &crate::batch::results::StoryResult| s.unfinished();
    let keys: Vec<String> = last
        .stories
        .iter()
        .filter(|s| unfinished(s))
        .map(|s| s.story_key.clone())
        .collect();
    if keys.is_empty() {
        return Err(Error::usage(format!(
            "session {sid} has no unfinished story"
        )));
    }
    let kept = last
        .stories
        .into_iter()
        .filter(|s| !unfinished(s))
        .collect();
    Ok((
        Request {
            keys,
            ..Request::default()
        },
        kept,
    ))
}

/// Stories the last batch left partial, with the user's answers to their blocker questions.
pub fn retry_request(
    common_dir: &std::path::Path,
    answers_file: Option<&std::path::Path>,
) -> Result<(Request, BTreeMap<String, Answers>), Error> {
    let last = results::load_last(common_dir)?.ok_or_else(|| {
        Error::usage_hint(
            "there is no earlier batch to retry",
            "run git teleos close first",
        )
    })?;
    let keys: Vec<String> = last
        .stories
        .iter()
        .filter(|s| s.outcome == Outcome::Partial)
        .map(|s| s.story_key.clone())
        .collect();
    if keys.is_empty() {
        return Err(Error::usage(format!(
            "the last batch ({}) left no story partially blocked",
            last.session_id
        )));
    }
    let mut answers: BTreeMap<String, Answers> = BTreeMap::new();
    if let Some(path) = answers_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        answers = parse_answers(&text).map_err(|e| {
            Error::usage_hint(
                format!("{}: {e}", path.display()),
                "expected a JSON list of {\"story_key\", \"task\", \"question\", \"answer\"} (git teleos debrief --answers-template)",
            )
        })?;
    }
    Ok((
        Request {
            keys,
            ..Request::default()
        },
        answers,
    ))
}

/// Answers: a list of `{story_key, task, question, answer}`; entries without an answer are skipped.
pub fn parse_answers(text: &str) -> Result<BTreeMap<String, Answers>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Entry {
        story_key: String,
        #[serde(default)]
        task: String,
        #[serde(default)]
        question: String,
        #[serde(default)]
        answer: Option<String>,
    }
    let entries: Vec<Entry> = serde_json::from_str(text)?;
    let mut map: BTreeMap<String, Answers> = BTreeMap::new();
    for e in entries {
        if let Some(a) = e.answer.filter(|a| !a.trim().is_empty()) {
            map.entry(e.story_key).or_default().push(BlockerQuestion {
                task: e.task,
                question: e.question,
                answer: Some(a),
            });
        }
    }
    Ok(map)
}
