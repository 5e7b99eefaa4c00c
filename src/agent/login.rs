//! Is the agent CLI logged in? Asked before a batch creates anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::AgentError;
use super::kind::AgentKind;
use super::preset::{command_line, resolve_program, AgentConfig};
use crate::process::Cmd;

/// What a preset's login check said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStatus {
    LoggedIn,
    NotLoggedIn(String),
    /// The check could not tell (no check for this preset, unexpected output, timeout…).
    Unknown(String),
}

const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(20);

/// Ask the agent CLI whether it is logged in. Errors only when the CLI cannot be found or run.
pub fn login_status(cfg: &AgentConfig) -> Result<LoginStatus, AgentError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let line = command_line(cfg, &cwd, Path::new("/dev/null"), false)?;
    let program = resolve_program(cfg.kind, &line.program, &cwd)?;
    let check: &[&str] = match cfg.kind {
        AgentKind::Claude => &["auth", "status"],
        AgentKind::Codex => &["login", "status"],
        AgentKind::Gemini | AgentKind::Opencode | AgentKind::Custom => {
            return Ok(LoginStatus::Unknown(format!(
                "the '{}' preset has no reliable login check",
                cfg.kind
            )))
        }
    };
    let out = Cmd::new(&program)
        .args(check)
        .timeout(PREFLIGHT_TIMEOUT)
        .kill_grace(Duration::from_millis(200))
        .run()?;
    if out.stopped.is_some() {
        return Ok(LoginStatus::Unknown(format!(
            "'{} {}' did not answer in time",
            cfg.kind,
            check.join(" ")
        )));
    }
    let stdout = out.stdout_text();
    Ok(match cfg.kind {
        AgentKind::Claude => claude_login(out.code(), &stdout),
        _ => codex_login(out.code(), &stdout, &out.stderr_text()),
    })
}

/// Stop a batch before anything is created when the agent is missing or not logged in.
/// When the check cannot tell, the batch goes ahead (a story failure will say why).
pub fn preflight(cfg: &AgentConfig) -> Result<(), AgentError> {
    match login_status(cfg)? {
        LoginStatus::NotLoggedIn(detail) => Err(AgentError::NotLoggedIn {
            kind: cfg.kind,
            detail,
        }),
        LoginStatus::LoggedIn | LoginStatus::Unknown(_) => Ok(()),
    }
}

/// `claude auth status` prints JSON with `loggedIn` and exits 1 when not logged in.
pub(crate) fn claude_login(exit_code: Option<i32>, stdout: &str) -> LoginStatus {
    let parsed: Option<serde_json::Value> = serde_json::from_str(stdout.trim()).ok();
    match parsed
        .as_ref()
        .and_then(|v| v.get("loggedIn"))
        .and_then(|v| v.as_bool())
    {
        Some(true) => LoginStatus::LoggedIn,
        Some(false) => LoginStatus::NotLoggedIn(String::new()),
        // No JSON: an older or different CLI; its exit code alone is not proof either way.
        None => LoginStatus::Unknown(format!(
            "unexpected answer from 'claude auth status' ({})",
            exit_text(exit_code)
        )),
    }
}

/// `codex login status` exits 0 when logged in.
pub(crate) fn codex_login(exit_code: Option<i32>, stdout: &str, stderr: &str) -> LoginStatus {
    let text = format!("{stdout}\n{stderr}").to_ascii_lowercase();
    match exit_code {
        Some(0) => LoginStatus::LoggedIn,
        // Only a non-zero exit that says so is a verdict; anything else (an
        // unknown subcommand on an old version) cannot tell.
        Some(_) if text.contains("not logged in") => LoginStatus::NotLoggedIn(String::new()),
        _ => LoginStatus::Unknown(format!(
            "unexpected answer from 'codex login status' ({})",
            exit_text(exit_code)
        )),
    }
}

/// "exit 1", or "killed by a signal" when there is no exit code (never a Debug `Some(1)`).
fn exit_text(exit_code: Option<i32>) -> String {
    exit_code.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_checks() {
        assert_eq!(
            claude_login(Some(0), r#"{"loggedIn":true,"authMethod":"claude.ai"}"#),
            LoginStatus::LoggedIn
        );
        assert_eq!(
            claude_login(Some(1), r#"{"loggedIn":false}"#),
            LoginStatus::NotLoggedIn(String::new())
        );
        assert!(matches!(
            claude_login(Some(1), "error: unknown command 'auth'"),
            LoginStatus::Unknown(_)
        ));
        assert_eq!(
            codex_login(Some(0), "Logged in using ChatGPT", ""),
            LoginStatus::LoggedIn
        );
        assert_eq!(
            codex_login(Some(1), "", "Not logged in"),
            LoginStatus::NotLoggedIn(String::new())
        );
        // What the real CLIs print with no account (tests/it/common/fixtures/agent-cli).
        assert_eq!(
            claude_login(
                Some(1),
                include_str!("../../tests/it/common/fixtures/agent-cli/claude-auth.out")
            ),
            LoginStatus::NotLoggedIn(String::new())
        );
        assert_eq!(
            codex_login(
                Some(1),
                "",
                include_str!("../../tests/it/common/fixtures/agent-cli/codex-login.err")
            ),
            LoginStatus::NotLoggedIn(String::new())
        );
        assert!(matches!(
            codex_login(Some(2), "", "error: unrecognized subcommand"),
            LoginStatus::Unknown(_)
        ));
    }

    #[test]
    fn preflight_with_stand_in_clis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}")).expect("write");
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
            p
        };
        let out = fake("claude-out", "echo '{\"loggedIn\":false}'\nexit 1\n");
        let ok = fake("claude-ok", "echo '{\"loggedIn\":true}'\n");
        // Fresh executables can be busy for a moment while other tests fork (ETXTBSY).
        let check = |program: &Path| {
            let c = AgentConfig {
                program: Some(program.to_path_buf()),
                ..AgentConfig::default()
            };
            for _ in 0..20 {
                match preflight(&c) {
                    Err(AgentError::Spawn { source, .. })
                        if source.raw_os_error() == Some(libc::ETXTBSY) =>
                    {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    other => return other,
                }
            }
            preflight(&c)
        };
        let err = check(&out).expect_err("not logged in");
        assert!(matches!(
            err,
            AgentError::NotLoggedIn {
                kind: AgentKind::Claude,
                ..
            }
        ));
        assert!(err
            .hints()
            .iter()
            .any(|h| h == "run 'claude auth login' (or set ANTHROPIC_API_KEY)"));
        check(&ok).expect("logged in");
        let gemini = AgentConfig {
            kind: AgentKind::Gemini,
            program: Some(ok),
            ..AgentConfig::default()
        };
        assert!(matches!(login_status(&gemini), Ok(LoginStatus::Unknown(_))));
    }
}
