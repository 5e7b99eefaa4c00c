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
    /// The CLI says it is not authenticated: a setup problem, not the story's (no retry).
    pub setup_error: Option<String>,
    /// The CLI's own output says the provider refused the call for its rate or usage limit.
    pub rate_limited: bool,
    /// Things the CLI reported that did not fail the run (codex `item.completed` errors).
    pub warnings: Vec<String>,
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

/// Top-level objects that may span several lines (gemini prints indented JSON), each starting
/// at a line that begins with `{`, with plain lines before, between and after them.
fn multiline_objects(text: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        if rest.starts_with('{') {
            let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
            if let Some(Ok(v @ Value::Object(_))) = stream.next() {
                found.push(v);
                pos += stream.byte_offset().max(1);
                continue;
            }
        }
        pos += line_end;
    }
    found
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
    // Error subtypes (error_max_turns, error_during_execution, …) carry the CLI's words in
    // `errors: [...]` and have no `result`.
    let detail: Vec<String> = env
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .or_else(|| str_at(e, &["message"]).map(str::to_string))
                        .unwrap_or_else(|| e.to_string())
                })
                .filter(|e| !e.trim().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let with_detail = |what: &str| {
        if detail.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", detail.join("; "))
        }
    };
    // `"subtype":"success","is_error":true` happens ("Not logged in · Please run /login").
    let failure = if is_error {
        Some(match result.as_deref() {
            Some(r) => format!("is_error: {r}"),
            None => with_detail(subtype),
        })
    } else if subtype.starts_with("error_") {
        Some(with_detail(subtype))
    } else {
        None
    };
    // `api_error_status: 429`, or the API's error text in `result`.
    let rate_limited = failure.is_some()
        && (env.get("api_error_status").and_then(Value::as_u64) == Some(429)
            || result
                .as_deref()
                .is_some_and(|r| r.contains("rate_limit_error")));
    let setup_error = result
        .as_deref()
        .filter(|r| is_error && claude_not_authenticated(r))
        .map(str::to_string);
    Envelope {
        final_text: result,
        failure,
        cost_usd,
        setup_error,
        rate_limited,
        warnings: Vec::new(),
    }
}

/// claude's answers when it has no usable credentials (2.1.x wording).
fn claude_not_authenticated(result: &str) -> bool {
    let lower = result.to_ascii_lowercase();
    lower.starts_with("not logged in")
        || lower.contains("please run /login")
        || lower.contains("invalid api key")
}

/// codex exec --json: JSONL events on stdout; the final message is in the `-o` file.
/// Top-level `error` events are transient ("Reconnecting... 2/5"): codex retries and may still
/// finish. Only `turn.failed`, or a run with no `turn.completed`, failed. An `item.completed`
/// whose item is an error is a warning.
fn codex(stdout: &str, output_file: Option<&str>) -> Envelope {
    let mut last_message = None;
    let mut last_error: Option<String> = None;
    let mut turn_failed = None;
    let mut completed = false;
    let mut warnings = Vec::new();
    let mut any_event = false;
    for event in json_lines(stdout) {
        any_event = true;
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "error" => last_error = str_at(&event, &["message"]).map(str::to_string),
            "turn.failed" => {
                turn_failed = Some(
                    str_at(&event, &["error", "message"])
                        .unwrap_or("turn failed")
                        .to_string(),
                );
            }
            "turn.completed" => {
                completed = true;
                turn_failed = None;
            }
            "turn.started" => completed = false,
            "item.completed" => match str_at(&event, &["item", "type"]) {
                Some("agent_message") => {
                    last_message = str_at(&event, &["item", "text"]).map(str::to_string);
                }
                Some("error") => {
                    if let Some(m) = str_at(&event, &["item", "message"]) {
                        warnings.push(m.to_string());
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    let failure = match (turn_failed, completed) {
        (Some(f), _) => Some(f),
        (None, true) => None,
        // No protocol at all (an old CLI, a wrapper): the exit code decides.
        (None, false) if !any_event => None,
        (None, false) => Some(match last_error {
            Some(e) => format!("codex ended without finishing its turn (last error: {e})"),
            None => "codex ended without finishing its turn".to_string(),
        }),
    };
    // The -o file is the CLI's own answer; the last agent message is a fallback for when
    // it was not written.
    let final_text = output_file.and_then(non_empty).or(last_message);
    Envelope {
        final_text,
        failure,
        warnings,
        ..Envelope::default()
    }
}

/// What gemini-cli's exit codes mean (0.61: `FatalError` subclasses and `process.exit`).
pub(crate) fn gemini_exit_meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        41 => "authentication error",
        42 => "bad input",
        44 => "sandbox error",
        52 => "configuration error",
        53 => "turn limit exceeded",
        54 => "tool error",
        55 => "untrusted workspace",
        130 => "cancelled",
        _ => return None,
    })
}

/// gemini -o json: one indented object `{session_id, response, stats, error?}` on stdout; on
/// failure a plain line then an indented `{session_id, error:{type,message,code}}` on stderr.
fn gemini(exit_code: Option<i32>, stdout: &str, stderr: &str) -> Envelope {
    let out = multiline_objects(stdout)
        .into_iter()
        .rev()
        .find(|v| v.get("response").is_some() || v.get("error").is_some());
    let final_text = out
        .as_ref()
        .and_then(|v| str_at(v, &["response"]))
        .map(str::to_string);
    let error_message = |v: &Value| {
        let e = v.get("error").filter(|e| !e.is_null())?;
        Some(
            e.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        )
    };
    let from_stderr = || {
        multiline_objects(stderr)
            .iter()
            .rev()
            .find_map(error_message)
    };
    let mut failure = out.as_ref().and_then(error_message).or_else(from_stderr);
    let code = exit_code.filter(|c| *c != 0);
    let meaning = code.and_then(gemini_exit_meaning);
    let setup_error = (code == Some(41)).then(|| {
        failure
            .clone()
            .unwrap_or_else(|| "gemini is not authenticated (exit 41)".to_string())
    });
    if let (Some(meaning), Some(code)) = (meaning, code) {
        failure = Some(match failure {
            Some(f) => format!("{meaning} (exit {code}): {f}"),
            None => format!("{meaning} (exit {code})"),
        });
    }
    Envelope {
        final_text,
        failure,
        setup_error,
        ..Envelope::default()
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
                // {"type":"error","error":{"name":"UnknownError","data":{"message":…}}}
                let e = event.get("error").unwrap_or(&event);
                let message = str_at(e, &["data", "message"])
                    .or_else(|| str_at(e, &["message"]))
                    .or_else(|| e.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                failure = Some(match str_at(e, &["name"]) {
                    Some(name) if !message.starts_with(name) => format!("{name}: {message}"),
                    _ => message,
                });
            }
            _ => {}
        }
    }
    let joined = texts.join("\n");
    Envelope {
        final_text: non_empty(&joined),
        failure,
        cost_usd: cost,
        ..Envelope::default()
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

    /// Real CLI outputs (see tests/it/common/fixtures/agent-cli/README.md).
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/it/common/fixtures/agent-cli/", $name))
        };
    }

    #[test]
    fn codex_reconnecting_events_are_transient() {
        // A run that reconnected, warned, and then answered: not a failure.
        let e = interpret(
            AgentKind::Codex,
            Some(0),
            fixture!("codex-success.out"),
            "",
            Some("final answer"),
        );
        assert_eq!(e.failure, None, "{e:?}");
        assert_eq!(e.final_text.as_deref(), Some("final answer"));
        assert_eq!(e.warnings.len(), 1);
        assert!(e.warnings[0].starts_with("Falling back from WebSockets"));
        // The real offline run never finished its turn: that is the failure, with the last
        // transient error as the detail.
        let e = interpret(
            AgentKind::Codex,
            Some(1),
            fixture!("codex.out"),
            "",
            Some(""),
        );
        let f = e.failure.unwrap_or_default();
        assert!(
            f.starts_with("codex ended without finishing its turn"),
            "{f}"
        );
        assert!(f.contains("waiting for network"), "{f}");
        let e = interpret(
            AgentKind::Codex,
            Some(1),
            fixture!("codex-model.out"),
            "",
            None,
        );
        assert_eq!(e.warnings.len(), 2, "{e:?}");
    }

    #[test]
    fn gemini_real_auth_error_is_a_setup_error_with_the_cli_words() {
        for stderr in [fixture!("gemini.err"), fixture!("gemini-notrust.err")] {
            let e = interpret(AgentKind::Gemini, Some(41), "", stderr, None);
            let setup = e.setup_error.unwrap_or_default();
            assert!(
                setup.starts_with("Please set an Auth method in your"),
                "{setup}"
            );
            assert!(e.failure.is_some_and(
                |f| f.starts_with("authentication error (exit 41): Please set an Auth method")
            ));
        }
    }

    #[test]
    fn gemini_exit_codes_are_named() {
        for (code, words) in [
            (42, "bad input"),
            (44, "sandbox error"),
            (52, "configuration error"),
            (54, "tool error"),
            (55, "untrusted workspace"),
            (130, "cancelled"),
        ] {
            let e = interpret(AgentKind::Gemini, Some(code), "", "boom\n", None);
            assert_eq!(e.failure, Some(format!("{words} (exit {code})")));
            assert_eq!(e.setup_error, None);
        }
    }

    #[test]
    fn gemini_indented_success_object_among_other_lines() {
        let e = interpret(
            AgentKind::Gemini,
            Some(0),
            fixture!("gemini-success.out"),
            "",
            None,
        );
        assert_eq!(e.final_text.as_deref(), Some("hi"));
        assert_eq!(e.failure, None);
    }

    #[test]
    fn claude_error_subtypes_show_the_cli_words() {
        let e = interpret(
            AgentKind::Claude,
            Some(1),
            fixture!("claude-maxturns-error.out"),
            "",
            None,
        );
        assert_eq!(
            e.failure.as_deref(),
            Some("error_max_turns: Reached maximum number of turns (3)")
        );
        assert!(!e.rate_limited && e.setup_error.is_none());
        assert_eq!(e.cost_usd, Some(0.0412));
    }

    #[test]
    fn claude_429_envelope_is_a_rate_limit_and_not_logged_in_a_setup_error() {
        let e = interpret(
            AgentKind::Claude,
            Some(1),
            fixture!("claude-429.out"),
            "",
            None,
        );
        assert!(e.rate_limited && e.setup_error.is_none(), "{e:?}");
        let e = interpret(AgentKind::Claude, Some(1), fixture!("claude.out"), "", None);
        assert!(!e.rate_limited);
        assert_eq!(
            e.setup_error.as_deref(),
            Some("Not logged in · Please run /login")
        );
    }

    #[test]
    fn opencode_real_error_event_is_read() {
        let e = interpret(
            AgentKind::Opencode,
            Some(1),
            fixture!("opencode-model.out"),
            "",
            None,
        );
        assert_eq!(
            e.failure.as_deref(),
            Some("UnknownError: Unexpected server error. Check server logs for details.")
        );
    }

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
