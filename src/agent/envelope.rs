//! Reading each CLI's output protocol after it exits: the final answer, an envelope-level
//! failure, the reported cost, and whether it was turned away by a rate or usage limit.

use serde_json::Value;

use super::kind::AgentKind;

/// What the CLI's own output says about the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Envelope {
    pub final_text: Option<String>,
    pub failure: Option<String>,
    pub cost_usd: Option<f64>,
}

/// Interpret a finished run. `output_file` is the content of codex's `-o` file, if any.
pub(crate) fn interpret(
    kind: AgentKind,
    exit_code: Option<i32>,
    stdout: &str,
    stderr: &str,
    output_file: Option<&str>,
) -> Envelope {
    match kind {
        AgentKind::Claude => claude(stdout),
        AgentKind::Codex => codex(stdout, output_file),
        AgentKind::Gemini => gemini(exit_code, stdout, stderr),
        AgentKind::Opencode => opencode(stdout),
        AgentKind::Custom => Envelope {
            final_text: non_empty(stdout),
            ..Envelope::default()
        },
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

/// Objects found one per line, in order (JSONL event streams); other lines are skipped.
fn json_lines(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
}

/// The whole text as one object, else the last line that is one and satisfies `accept`.
fn last_object(text: &str, accept: impl Fn(&Value) -> bool) -> Option<Value> {
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(text.trim()) {
        return Some(v);
    }
    let objects: Vec<Value> = json_lines(text).collect();
    objects.into_iter().rev().find(|v| accept(v))
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

/// claude -p --output-format json: one envelope `{type:"result", subtype, is_error, result, total_cost_usd}`.
fn claude(stdout: &str) -> Envelope {
    let looks_like_result = |v: &Value| v.get("type").and_then(Value::as_str) == Some("result");
    let Some(env) = last_object(stdout, looks_like_result) else {
        return Envelope {
            failure: Some("no JSON result envelope in claude's output".into()),
            ..Envelope::default()
        };
    };
    let result = env
        .get("result")
        .and_then(Value::as_str)
        .map(str::to_string);
    let subtype = env.get("subtype").and_then(Value::as_str).unwrap_or("");
    let is_error = env
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let cost_usd = env
        .get("total_cost_usd")
        .or_else(|| env.get("cost_usd"))
        .and_then(Value::as_f64);
    // `"subtype":"success","is_error":true` happens ("Not logged in · Please run /login").
    let failure = if is_error {
        Some(format!(
            "is_error: {}",
            result.as_deref().unwrap_or(subtype)
        ))
    } else if subtype.starts_with("error_") {
        let detail = env.get("errors").and_then(Value::as_array).map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect::<Vec<_>>()
        });
        match detail {
            Some(d) if !d.is_empty() => Some(format!("{subtype}: {}", d.join("; "))),
            _ => Some(subtype.to_string()),
        }
    } else {
        None
    };
    Envelope {
        final_text: result,
        failure,
        cost_usd,
    }
}

/// codex exec --json: JSONL events on stdout; the final message is in the `-o` file.
fn codex(stdout: &str, output_file: Option<&str>) -> Envelope {
    let mut last_message = None;
    let mut failure = None;
    for event in json_lines(stdout) {
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "error" => failure = str_at(&event, &["message"]).map(str::to_string),
            "turn.failed" => {
                failure = Some(
                    str_at(&event, &["error", "message"])
                        .unwrap_or("turn failed")
                        .to_string(),
                );
            }
            "item.completed" if str_at(&event, &["item", "type"]) == Some("agent_message") => {
                last_message = str_at(&event, &["item", "text"]).map(str::to_string);
            }
            _ => {}
        }
    }
    // The -o file is the CLI's own answer; the last agent message is a fallback for when
    // it was not written.
    let final_text = output_file.and_then(non_empty).or(last_message);
    Envelope {
        final_text,
        failure,
        cost_usd: None,
    }
}

/// gemini -o json: `{response, stats}` on stdout; errors as `{error:{message,code}}` on stderr.
fn gemini(exit_code: Option<i32>, stdout: &str, stderr: &str) -> Envelope {
    let has_key = |k: &'static str| move |v: &Value| v.get(k).is_some();
    let out = last_object(stdout, has_key("response"));
    let final_text = out
        .as_ref()
        .and_then(|v| str_at(v, &["response"]))
        .map(str::to_string);
    let error_message = |v: &Value| {
        let e = v.get("error")?;
        Some(
            e.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        )
    };
    let mut failure = out.as_ref().and_then(error_message).or_else(|| {
        last_object(stderr, has_key("error"))
            .as_ref()
            .and_then(error_message)
    });
    let exit_meaning = match exit_code {
        Some(41) => Some("authentication error (exit 41)"),
        Some(53) => Some("turn limit exceeded (exit 53)"),
        _ => None,
    };
    if let Some(meaning) = exit_meaning {
        failure = Some(match failure {
            Some(f) => format!("{meaning}: {f}"),
            None => meaning.to_string(),
        });
    }
    Envelope {
        final_text,
        failure,
        cost_usd: None,
    }
}

/// opencode run --format json: JSONL events; the answer is the text parts after the last
/// `step_start`; `step_finish` parts carry the cost.
fn opencode(stdout: &str) -> Envelope {
    let mut texts: Vec<String> = Vec::new();
    let mut cost: Option<f64> = None;
    let mut failure = None;
    for event in json_lines(stdout) {
        let part = event.get("part");
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .or_else(|| part.and_then(|p| p.get("type")).and_then(Value::as_str))
            .unwrap_or("");
        match kind {
            "step_start" | "step-start" => texts.clear(),
            "text" => {
                // Lenient about the shape: {part:{text}}, {text}, or {part:"..."}.
                let text = part
                    .and_then(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
                    .or_else(|| event.get("text").and_then(Value::as_str));
                if let Some(t) = text {
                    texts.push(t.to_string());
                }
            }
            "step_finish" | "step-finish" => {
                if let Some(c) = part.and_then(|p| p.get("cost")).and_then(Value::as_f64) {
                    cost = Some(cost.unwrap_or(0.0) + c);
                }
            }
            "error" => {
                let e = event.get("error").unwrap_or(&event);
                failure = Some(
                    str_at(e, &["data", "message"])
                        .or_else(|| str_at(e, &["message"]))
                        .or_else(|| e.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string()),
                );
            }
            _ => {}
        }
    }
    let joined = texts.join("\n");
    Envelope {
        final_text: non_empty(&joined),
        failure,
        cost_usd: cost,
    }
}

/// Phrases agent CLIs use when a provider turns them away for a while.
const LIMIT_PHRASES: &[&str] = &[
    "rate limit",
    "rate_limit",
    "ratelimit",
    "usage limit",
    "limit reached",
    "resets at",
    "overloaded",
    "too many requests",
    "quota exceeded",
    "resource_exhausted",
];

/// Whether a failed run's text says it hit a rate or usage limit.
pub(crate) fn mentions_rate_limit(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    LIMIT_PHRASES.iter().any(|p| lower.contains(p)) || has_status_429(&lower)
}

/// `429` as a number on its own, not inside `14290` or a hash.
fn has_status_429(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices("429").any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + 3).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_success() {
        let out = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":1200,"result":"done\n```json\n{}\n```","session_id":"x","total_cost_usd":0.1234}"#;
        let e = interpret(AgentKind::Claude, Some(0), out, "", None);
        assert_eq!(e.final_text.as_deref(), Some("done\n```json\n{}\n```"));
        assert_eq!(e.failure, None);
        assert_eq!(e.cost_usd, Some(0.1234));
    }

    #[test]
    fn claude_is_error_with_subtype_success_is_a_failure() {
        let out = r#"{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login","total_cost_usd":0}"#;
        let e = interpret(AgentKind::Claude, Some(1), out, "", None);
        assert_eq!(
            e.failure.as_deref(),
            Some("is_error: Not logged in · Please run /login")
        );
        assert_eq!(e.cost_usd, Some(0.0));
    }

    #[test]
    fn claude_error_subtype_is_a_failure() {
        let out = r#"{"type":"result","subtype":"error_max_turns","is_error":false,"num_turns":30,"total_cost_usd":2.5}"#;
        let e = interpret(AgentKind::Claude, Some(0), out, "", None);
        assert_eq!(e.failure.as_deref(), Some("error_max_turns"));
        assert_eq!(e.final_text, None);
        assert_eq!(e.cost_usd, Some(2.5));
    }

    #[test]
    fn claude_envelope_after_noise_lines_and_missing_envelope() {
        let out = "warning: something\n{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\"}\n";
        assert_eq!(
            interpret(AgentKind::Claude, Some(0), out, "", None)
                .final_text
                .as_deref(),
            Some("ok")
        );
        let e = interpret(AgentKind::Claude, Some(1), "Segmentation fault", "", None);
        assert!(e.failure.is_some_and(|f| f.contains("no JSON")));
    }

    #[test]
    fn gemini_response_and_stderr_error() {
        let out = r#"{"response":"all done","stats":{"models":{}}}"#;
        let e = interpret(AgentKind::Gemini, Some(0), out, "", None);
        assert_eq!(e.final_text.as_deref(), Some("all done"));
        assert_eq!(e.failure, None);

        let err = r#"{"error":{"type":"FatalAuthenticationError","message":"Please set an Auth method","code":41}}"#;
        let e = interpret(AgentKind::Gemini, Some(41), "", err, None);
        assert_eq!(
            e.failure.as_deref(),
            Some("authentication error (exit 41): Please set an Auth method")
        );
    }

    #[test]
    fn opencode_text_after_last_step_start_and_cost() {
        let out = [
            r#"{"type":"step_start","part":{"type":"step-start"}}"#,
            r#"{"type":"text","part":{"type":"text","text":"thinking out loud"}}"#,
            r#"{"type":"tool_use","part":{"tool":"bash"}}"#,
            r#"{"type":"step_finish","part":{"cost":0.01}}"#,
            "not json at all",
            r#"{"type":"step_start","part":{}}"#,
            r#"{"type":"text","part":{"text":"final part one"}}"#,
            r#"{"type":"text","text":"final part two"}"#,
            r#"{"type":"step_finish","part":{"cost":0.02}}"#,
        ]
        .join("\n");
        let e = interpret(AgentKind::Opencode, Some(0), &out, "", None);
        assert_eq!(
            e.final_text.as_deref(),
            Some("final part one\nfinal part two")
        );
        assert!((e.cost_usd.unwrap_or(0.0) - 0.03).abs() < 1e-9);
        assert_eq!(e.failure, None);
    }

    #[test]
    fn codex_final_text_from_output_file_then_events() {
        let events = [
            r#"{"type":"thread.started","thread_id":"t"}"#,
            r#"{"type":"item.completed","item":{"id":"1","type":"agent_message","text":"from events"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1}}"#,
        ]
        .join("\n");
        let e = interpret(AgentKind::Codex, Some(0), &events, "", Some("from file\n"));
        assert_eq!(e.final_text.as_deref(), Some("from file\n"));
        let e = interpret(AgentKind::Codex, Some(0), &events, "", None);
        assert_eq!(e.final_text.as_deref(), Some("from events"));

        let failed = r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#;
        let e = interpret(AgentKind::Codex, Some(1), failed, "", Some(""));
        assert_eq!(e.failure.as_deref(), Some("stream disconnected"));
        assert_eq!(e.final_text, None);
    }

    #[test]
    fn custom_final_text_is_stdout() {
        let e = interpret(AgentKind::Custom, Some(0), "hello\n", "", None);
        assert_eq!(e.final_text.as_deref(), Some("hello\n"));
        assert_eq!(
            interpret(AgentKind::Custom, Some(0), "  \n", "", None).final_text,
            None
        );
    }

    #[test]
    fn rate_limit_phrases() {
        assert!(mentions_rate_limit(
            "is_error: Claude AI usage limit reached|1712345678"
        ));
        assert!(mentions_rate_limit("API Error: 429 {\"type\":\"error\"}"));
        assert!(mentions_rate_limit("Overloaded"));
        assert!(mentions_rate_limit("5-hour limit reached ∙ resets 3pm"));
        assert!(!mentions_rate_limit("line 14290: syntax error"));
        assert!(!mentions_rate_limit("commit a429f00"));
        assert!(!mentions_rate_limit("tests failed"));
    }
}
