//! The worker result: the JSON object an agent ends its answer with, and how it is found.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the agent says the story went.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    Completed,
    Partial,
    /// Also the default: a result that does not say is not a success.
    #[default]
    Error,
}

impl WorkerStatus {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "completed" => Some(WorkerStatus::Completed),
            "partial" => Some(WorkerStatus::Partial),
            "error" => Some(WorkerStatus::Error),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockerQuestion {
    #[serde(default, deserialize_with = "text")]
    pub task: String,
    #[serde(default, deserialize_with = "text")]
    pub question: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewSummary {
    #[serde(default, deserialize_with = "count")]
    pub must_fix_found: u32,
    #[serde(default, deserialize_with = "count")]
    pub must_fix_resolved: u32,
    #[serde(default, deserialize_with = "count")]
    pub should_fix: u32,
    #[serde(default, deserialize_with = "count")]
    pub iterations: u32,
}

/// The worker result (checked as README "Verify, don't trust" says). Missing fields take their
/// defaults; counts may be given as strings; `story_key` and `status` are checked by
/// [`extract_result`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct WorkerResult {
    #[serde(deserialize_with = "text")]
    pub story_key: String,
    #[serde(deserialize_with = "status")]
    pub status: WorkerStatus,
    #[serde(deserialize_with = "count")]
    pub tasks_total: u32,
    #[serde(deserialize_with = "count")]
    pub tasks_completed_by_closer: u32,
    #[serde(deserialize_with = "count")]
    pub tasks_already_done: u32,
    #[serde(deserialize_with = "count")]
    pub tasks_blocked: u32,
    #[serde(deserialize_with = "count")]
    pub tasks_human_validation: u32,
    #[serde(deserialize_with = "questions")]
    pub blocker_questions: Vec<BlockerQuestion>,
    #[serde(deserialize_with = "texts")]
    pub human_validation_tasks: Vec<String>,
    #[serde(deserialize_with = "review")]
    pub review_summary: ReviewSummary,
    #[serde(deserialize_with = "opt_text")]
    pub sprint_status: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub commit_hash: Option<String>,
    #[serde(deserialize_with = "texts")]
    pub errors: Vec<String>,
}

// Lenient readers: agents write `"3"` for 3, `null` for nothing, objects where a string was
// asked for. A slightly off result is still worth reading; verification checks it anyway.

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))
            .map(|n| n.min(u64::from(u32::MAX)) as u32)
            .ok_or_else(|| de::Error::custom(format!("expected a count, got {n}"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("expected a count, got {s:?}"))),
        other => Err(de::Error::custom(format!("expected a count, got {other}"))),
    }
}

fn value_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        // {"task": "..."} or {"text": "..."} where a plain string was asked for.
        Value::Object(ref m) => ["task", "text", "message", "description"]
            .iter()
            .find_map(|k| m.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        other => other.to_string(),
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(value_text(Value::deserialize(d)?))
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = value_text(Value::deserialize(d)?);
    Ok((!s.trim().is_empty()).then_some(s))
}

fn texts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => Vec::new(),
        Value::Array(items) => items.into_iter().map(value_text).collect(),
        single => vec![value_text(single)],
    })
}

fn questions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BlockerQuestion>, D::Error> {
    let items = match Value::deserialize(d)? {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(question) => Ok(BlockerQuestion {
                task: String::new(),
                question,
            }),
            other => BlockerQuestion::deserialize(other).map_err(de::Error::custom),
        })
        .collect()
}

fn review<'de, D: Deserializer<'de>>(d: D) -> Result<ReviewSummary, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(ReviewSummary::default()),
        other => ReviewSummary::deserialize(other).map_err(de::Error::custom),
    }
}

fn status<'de, D: Deserializer<'de>>(d: D) -> Result<WorkerStatus, D::Error> {
    let s = value_text(Value::deserialize(d)?);
    WorkerStatus::parse(&s).ok_or_else(|| de::Error::custom(format!("unknown status {s:?}")))
}

/// Why no worker result could be read from an agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("no JSON object found in the agent's answer")]
    NoJson,
    #[error("the agent's JSON result is invalid: {0}")]
    Invalid(String),
    #[error("the agent's JSON result has no '{0}' field")]
    MissingField(&'static str),
    #[error("the agent's JSON result has a bad '{field}': {reason}")]
    BadField { field: &'static str, reason: String },
}

/// Read the worker result from the agent's final text: the last fenced ```json block that is an
/// object, else the whole text, else the last balanced `{…}` that parses to an object.
pub fn extract_result(text: &str) -> Result<WorkerResult, ExtractError> {
    let object = last_fenced_object(text)
        .or_else(|| whole_object(text))
        .or_else(|| last_braced_object(text))
        .ok_or(ExtractError::NoJson)?;
    validate(object)
}

fn validate(object: Value) -> Result<WorkerResult, ExtractError> {
    let key = object
        .get("story_key")
        .ok_or(ExtractError::MissingField("story_key"))?;
    if key.as_str().is_none_or(|k| k.trim().is_empty()) {
        return Err(ExtractError::BadField {
            field: "story_key",
            reason: format!("expected a story key, got {key}"),
        });
    }
    let status = object
        .get("status")
        .ok_or(ExtractError::MissingField("status"))?;
    if status.as_str().and_then(WorkerStatus::parse).is_none() {
        return Err(ExtractError::BadField {
            field: "status",
            reason: format!("expected completed, partial or error, got {status}"),
        });
    }
    serde_json::from_value(object).map_err(|e| ExtractError::Invalid(e.to_string()))
}

fn as_object(s: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(s.trim()) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

fn whole_object(text: &str) -> Option<Value> {
    as_object(text)
}

/// Bodies of ```json fences, in order. An unclosed last fence (a cut-off answer) runs to the end.
fn fenced_json_blocks(text: &str) -> Vec<&str> {
    struct Open {
        /// Where the body starts; `None` for another language's fence, skipped whole.
        body: Option<usize>,
        ticks: usize,
    }
    let mut blocks = Vec::new();
    let mut open: Option<Open> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let trimmed = line.trim_start();
        // Fences may be indented up to three spaces (CommonMark); deeper is code, not a fence.
        if line.len() - trimmed.len() > 3 || !trimmed.starts_with("```") {
            continue;
        }
        let ticks = trimmed.bytes().take_while(|b| *b == b'`').count();
        let info = trimmed[ticks..].trim();
        match &open {
            Some(o) if info.is_empty() && ticks >= o.ticks => {
                if let Some(body) = o.body {
                    blocks.push(&text[body..start]);
                }
                open = None;
            }
            Some(_) => {}
            None => {
                let lang = info.split_whitespace().next().unwrap_or("");
                let body = lang.eq_ignore_ascii_case("json").then_some(pos);
                open = Some(Open { body, ticks });
            }
        }
    }
    if let Some(body) = open.and_then(|o| o.body) {
        blocks.push(&text[body..]);
    }
    blocks
}

/// The last fenced json object; one that looks like a worker result wins over a later one
/// that does not (an agent quoting some other JSON after its result).
fn last_fenced_object(text: &str) -> Option<Value> {
    let objects: Vec<Value> = fenced_json_blocks(text)
        .into_iter()
        .rev()
        .filter_map(as_object)
        .collect();
    let looks_like_result = |v: &&Value| v.get("story_key").is_some() || v.get("status").is_some();
    objects
        .iter()
        .find(looks_like_result)
        .or(objects.first())
        .cloned()
}

/// Work limits for the brace scan, so a huge answer full of braces costs bounded time.
const MAX_BRACE_STARTS: usize = 2_000;
const MAX_SCAN_BYTES: usize = 16 << 20;

/// The outermost object among the last balanced `{…}` spans that parse: candidate starts are
/// tried from the end; a parsed span that encloses the best so far replaces it.
fn last_braced_object(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let mut budget = MAX_SCAN_BYTES;
    let mut best: Option<(usize, usize, Value)> = None;
    let starts = bytes
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'{')
        .map(|(i, _)| i);
    for start in starts.take(MAX_BRACE_STARTS) {
        if budget == 0 {
            break;
        }
        let (end, scanned) = match_brace(bytes, start, budget);
        budget = budget.saturating_sub(scanned);
        let Some(end) = end else { continue };
        if let Some((s, e, _)) = &best {
            // Only a span that encloses the best one can improve on it.
            if !(start < *s && end >= *e) {
                continue;
            }
        }
        budget = budget.saturating_sub(end - start);
        if let Some(v) = as_object(&text[start..end]) {
            best = Some((start, end, v));
        }
    }
    best.map(|(_, _, v)| v)
}

/// From the `{` at `start`, the end (exclusive) of its balanced span, aware of JSON strings and
/// escapes; also how many bytes were looked at (at most `budget`).
fn match_brace(bytes: &[u8], start: usize, budget: usize) -> (Option<usize>, usize) {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let limit = bytes.len().min(start.saturating_add(budget));
    for (i, &b) in bytes.iter().enumerate().take(limit).skip(start) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return (Some(i + 1), i + 1 - start);
                }
            }
            _ => {}
        }
    }
    (None, limit - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const FULL: &str = r#"{"story_key":"1-2-login","status":"partial","tasks_total":10,"tasks_completed_by_closer":"3",
      "tasks_already_done":6,"tasks_blocked":1,"tasks_human_validation":0,
      "blocker_questions":[{"task":"Wire SSO","question":"Which IdP {prod} uses?"}],
      "human_validation_tasks":[],"review_summary":{"must_fix_found":2,"must_fix_resolved":2,"should_fix":1,"iterations":2},
      "sprint_status":"review","commit_hash":"abc1234","errors":[]}"#;

    #[test]
    fn full_result_in_a_fence() {
        let text = format!("Done.\n\n```json\n{FULL}\n```\n");
        let r = extract_result(&text).expect("result");
        assert_eq!(r.story_key, "1-2-login");
        assert_eq!(r.status, WorkerStatus::Partial);
        assert_eq!(
            (r.tasks_total, r.tasks_completed_by_closer, r.tasks_blocked),
            (10, 3, 1)
        );
        assert_eq!(r.blocker_questions[0].question, "Which IdP {prod} uses?");
        assert_eq!(r.review_summary.iterations, 2);
        assert_eq!(r.commit_hash.as_deref(), Some("abc1234"));
        assert_eq!(r.sprint_status.as_deref(), Some("review"));
    }

    #[test]
    fn last_fenced_block_wins() {
        let text = "```json\n{\"story_key\":\"a\",\"status\":\"error\"}\n```\nthen\n```json\n{\"story_key\":\"b\",\"status\":\"completed\"}\n```\n";
        assert_eq!(extract_result(text).expect("result").story_key, "b");
        // A later fence that is not a result does not hide the result.
        let text = format!("{text}```json\n{{\"unrelated\":1}}\n```\n");
        assert_eq!(extract_result(&text).expect("result").story_key, "b");
        // Fences of other languages are skipped, even with JSON inside.
        let text = format!("{text}```text\n{{\"story_key\":\"c\",\"status\":\"error\"}}\n```\n");
        assert_eq!(extract_result(&text).expect("result").story_key, "b");
    }

    #[test]
    fn unclosed_last_fence_still_read() {
        let text = "answer\n```json\n{\"story_key\":\"k\",\"status\":\"completed\"}\n";
        assert_eq!(
            extract_result(text).expect("result").status,
            WorkerStatus::Completed
        );
    }

    #[test]
    fn whole_text_as_json() {
        let r = extract_result(&format!("  {FULL}  \n")).expect("result");
        assert_eq!(r.tasks_already_done, 6);
    }

    #[test]
    fn prose_around_json_and_nested_braces_in_strings() {
        let text = format!(
            "I looked at {{the config}} and \"quoted {{ stuff\".\nResult: {} Hope this helps {{bye}}",
            r#"{"story_key":"s-1","status":"completed","errors":["brace } in \"string\" {"],"review_summary":{"iterations":1}}"#
        );
        let r = extract_result(&text).expect("result");
        assert_eq!(r.story_key, "s-1");
        assert_eq!(r.errors, vec!["brace } in \"string\" {".to_string()]);
        assert_eq!(r.review_summary.iterations, 1);
    }

    #[test]
    fn missing_optional_fields_and_lenient_shapes() {
        let r = extract_result(
            r#"{"story_key":"x","status":"Completed","tasks_total":"4","blocker_questions":["Which DB?"],"human_validation_tasks":[{"task":"Check on a phone"}],"commit_hash":null,"review_summary":null}"#,
        )
        .expect("result");
        assert_eq!(r.status, WorkerStatus::Completed);
        assert_eq!(r.tasks_total, 4);
        assert_eq!(r.blocker_questions[0].question, "Which DB?");
        assert_eq!(
            r.human_validation_tasks,
            vec!["Check on a phone".to_string()]
        );
        assert_eq!(r.commit_hash, None);
    }

    #[test]
    fn errors_explain_why() {
        assert_eq!(
            extract_result("no json here, sorry"),
            Err(ExtractError::NoJson)
        );
        assert_eq!(extract_result(""), Err(ExtractError::NoJson));
        assert_eq!(
            extract_result(r#"{"status":"completed"}"#),
            Err(ExtractError::MissingField("story_key"))
        );
        assert_eq!(
            extract_result(r#"{"story_key":"k"}"#),
            Err(ExtractError::MissingField("status"))
        );
        assert!(matches!(
            extract_result(r#"{"story_key":"k","status":"done"}"#),
            Err(ExtractError::BadField {
                field: "status",
                ..
            })
        ));
        let e = extract_result(r#"{"story_key":"k","status":"partial","tasks_total":"many"}"#);
        assert!(
            matches!(&e, Err(ExtractError::Invalid(m)) if m.contains("many")),
            "{e:?}"
        );
        // A broken fence and no other object: nothing to read.
        assert_eq!(
            extract_result("```json\n{\"story_key\": \n```"),
            Err(ExtractError::NoJson)
        );
    }

    #[test]
    fn garbage_is_bounded() {
        // 1 MB of braces, quotes and backslashes: every `{` is a candidate start.
        let unit = "{\"a\\\":{[{ }x\"{";
        let garbage: String = unit.repeat((1 << 20) / unit.len());
        let t = Instant::now();
        let _ = extract_result(&garbage);
        let text = format!("{garbage}\n{{\"story_key\":\"k\",\"status\":\"error\"}}");
        assert_eq!(extract_result(&text).expect("result").story_key, "k");
        // An unterminated string after many starts: each scan runs to the end.
        let open_string = format!("{}\"{}", "{".repeat(5_000), "x".repeat(1 << 20));
        let _ = extract_result(&open_string);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn round_trips_through_serde() {
        let r = extract_result(FULL).expect("result");
        let json = serde_json::to_string(&r).expect("serialize");
        assert!(json.contains("\"status\":\"partial\""));
        assert_eq!(extract_result(&json).expect("again"), r);
    }
}
