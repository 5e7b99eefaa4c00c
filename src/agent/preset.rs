//! Which agent CLI to run and the exact command line each preset needs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::error::AgentError;

/// A known agent CLI, or a custom command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentKind {
    #[default]
    Claude,
    Codex,
    Gemini,
    Opencode,
    Custom,
}

impl AgentKind {
    pub const ALL: [AgentKind; 5] = [
        AgentKind::Claude,
        AgentKind::Codex,
        AgentKind::Gemini,
        AgentKind::Opencode,
        AgentKind::Custom,
    ];

    /// The name used on the command line and in git config.
    pub fn name(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
            AgentKind::Codex => "codex",
            AgentKind::Gemini => "gemini",
            AgentKind::Opencode => "opencode",
            AgentKind::Custom => "custom",
        }
    }

    /// The executable a preset runs; `None` for a custom command, which names its own.
    pub fn default_program(self) -> Option<&'static str> {
        match self {
            AgentKind::Custom => None,
            other => Some(other.name()),
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AgentKind {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        AgentKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| AgentError::UnknownAgent {
                name: s.to_string(),
            })
    }
}

/// Everything needed to run the agent, resolved from flags, git config and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub kind: AgentKind,
    /// Overrides the preset's executable (a name looked up on PATH, or a path).
    pub program: Option<PathBuf>,
    /// `teleos.agentCommand`: split into argv like a shell would, never run by one.
    pub custom_command: Option<String>,
    pub model: Option<String>,
    /// Only the claude preset has a turn limit flag; the others ignore it.
    pub max_turns: Option<u32>,
    /// Appended to the preset's arguments (before codex's trailing `-`).
    pub extra_args: Vec<String>,
    /// Wall-clock limit for one run (one attempt).
    pub timeout: Duration,
    /// Kill the agent when it prints nothing for this long.
    pub stall_timeout: Option<Duration>,
    /// How many times a rate- or usage-limited run is tried again.
    pub rate_limit_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub rate_limit_backoff: Duration,
    /// Time between SIGTERM and SIGKILL when the agent has to be stopped.
    pub kill_grace: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            kind: AgentKind::Claude,
            program: None,
            custom_command: None,
            model: None,
            max_turns: None,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(3600),
            stall_timeout: None,
            rate_limit_retries: 3,
            rate_limit_backoff: Duration::from_secs(60),
            kill_grace: Duration::from_secs(5),
        }
    }
}

/// One resolved command line, ready to spawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub kind: AgentKind,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Variables added to the child's environment.
    pub env: Vec<(String, String)>,
    /// Where codex writes its final message (`-o`); read after the run.
    pub output_file: Option<PathBuf>,
}

impl Invocation {
    /// The command line quoted the way a shell would read it back (for logs and messages).
    pub fn display(&self) -> String {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .map(|w| {
                shlex::try_quote(&w)
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| format!("{w:?}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The words of a command line before the program is looked up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub output_file: Option<PathBuf>,
}

/// The preset's argv, exactly as the installed CLIs accept it.
/// `cwd` is the checkout the agent works in; `output_file` is used by codex (`-o`) only.
pub(crate) fn command_line(
    cfg: &AgentConfig,
    cwd: &Path,
    output_file: &Path,
    as_root: bool,
) -> Result<CommandLine, AgentError> {
    let s = |x: &str| x.to_string();
    let dir = cwd.to_string_lossy().into_owned();
    let mut env = Vec::new();
    let mut output = None;
    let (program, mut args): (PathBuf, Vec<String>) = match cfg.kind {
        AgentKind::Claude => {
            let mut a = vec![
                s("-p"),
                s("--output-format"),
                s("json"),
                s("--dangerously-skip-permissions"),
            ];
            if let Some(m) = &cfg.model {
                a.extend([s("--model"), m.clone()]);
            }
            if let Some(n) = cfg.max_turns {
                a.extend([s("--max-turns"), n.to_string()]);
            }
            // claude refuses --dangerously-skip-permissions as root unless told it is sandboxed.
            if as_root {
                env.push((s("IS_SANDBOX"), s("1")));
            }
            (PathBuf::from("claude"), a)
        }
        AgentKind::Codex => {
            let mut a = vec![
                s("exec"),
                s("--json"),
                // Its workspace sandbox cannot write the git dir of a linked worktree.
                s("--dangerously-bypass-approvals-and-sandbox"),
                s("--skip-git-repo-check"),
                s("-C"),
                dir,
                s("-o"),
                output_file.to_string_lossy().into_owned(),
            ];
            if let Some(m) = &cfg.model {
                a.extend([s("--model"), m.clone()]);
            }
            output = Some(output_file.to_path_buf());
            (PathBuf::from("codex"), a)
        }
        AgentKind::Gemini => {
            // `-p ""` selects headless mode; the prompt itself comes on stdin.
            let mut a = vec![
                s("-p"),
                s(""),
                s("-o"),
                s("json"),
                s("--approval-mode"),
                s("yolo"),
                s("--skip-trust"),
            ];
            if let Some(m) = &cfg.model {
                a.extend([s("--model"), m.clone()]);
            }
            (PathBuf::from("gemini"), a)
        }
        AgentKind::Opencode => {
            let mut a = vec![
                s("run"),
                s("--format"),
                s("json"),
                s("--auto"),
                s("--dir"),
                dir,
            ];
            if let Some(m) = &cfg.model {
                a.extend([s("--model"), m.clone()]);
            }
            (PathBuf::from("opencode"), a)
        }
        AgentKind::Custom => {
            let command = cfg.custom_command.as_deref().unwrap_or("").to_string();
            let words = shlex::split(&command).ok_or_else(|| AgentError::BadCommand {
                command: command.clone(),
                reason: "unbalanced quotes or a trailing backslash".into(),
            })?;
            let mut words = words.into_iter();
            let program = words.next().ok_or_else(|| AgentError::BadCommand {
                command: command.clone(),
                reason: "it is empty (set teleos.agentCommand or --agent-command)".into(),
            })?;
            (PathBuf::from(program), words.collect())
        }
    };
    args.extend(cfg.extra_args.iter().cloned());
    if cfg.kind == AgentKind::Codex {
        // The trailing `-` tells codex to read the prompt from stdin; it must stay last.
        args.push(s("-"));
    }
    let program = match (&cfg.program, cfg.kind) {
        (Some(p), kind) if kind != AgentKind::Custom => p.clone(),
        _ => program,
    };
    Ok(CommandLine {
        program,
        args,
        env,
        output_file: output,
    })
}

/// Look the program up on PATH; a relative path with a separator is taken relative to the
/// checkout, as it would be for a shell started there.
pub(crate) fn resolve_program(
    kind: AgentKind,
    program: &Path,
    cwd: &Path,
) -> Result<PathBuf, AgentError> {
    let candidate = if program.is_relative() && program.components().count() > 1 {
        cwd.join(program)
    } else {
        program.to_path_buf()
    };
    which::which(&candidate).map_err(|_| AgentError::NotFound {
        kind,
        program: program.to_string_lossy().into_owned(),
    })
}

/// Resolve the full invocation for a run in `cwd`.
pub fn build_invocation(
    cfg: &AgentConfig,
    cwd: &Path,
    output_file: &Path,
) -> Result<Invocation, AgentError> {
    let line = command_line(cfg, cwd, output_file, running_as_root())?;
    let program = resolve_program(cfg.kind, &line.program, cwd)?;
    Ok(Invocation {
        kind: cfg.kind,
        program,
        args: line.args,
        env: line.env,
        output_file: line.output_file,
    })
}

pub(crate) fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

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
    let Some(out) = super::run::run_captured(&program, check, PREFLIGHT_TIMEOUT)? else {
        return Ok(LoginStatus::Unknown(format!(
            "'{} {}' did not answer in time",
            cfg.kind,
            check.join(" ")
        )));
    };
    Ok(match cfg.kind {
        AgentKind::Claude => claude_login(out.exit_code, &out.stdout),
        _ => codex_login(out.exit_code, &out.stdout, &out.stderr),
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
            "unexpected answer from 'claude auth status' (exit {exit_code:?})"
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
            "unexpected answer from 'codex login status' (exit {exit_code:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(cfg: &AgentConfig, as_root: bool) -> (String, Vec<String>, Vec<(String, String)>) {
        let line = command_line(
            cfg,
            Path::new("/work/tree"),
            Path::new("/logs/s.log.final.txt"),
            as_root,
        )
        .expect("command line");
        (
            line.program.to_string_lossy().into_owned(),
            line.args,
            line.env,
        )
    }

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    fn cfg(kind: AgentKind) -> AgentConfig {
        AgentConfig {
            kind,
            model: Some("m1".into()),
            max_turns: Some(30),
            extra_args: vec!["--x".into()],
            ..AgentConfig::default()
        }
    }

    #[test]
    fn claude_argv_and_root_sandbox_env() {
        let (program, args, env) = argv(&AgentConfig::default(), false);
        assert_eq!(program, "claude");
        assert_eq!(
            args,
            words("-p --output-format json --dangerously-skip-permissions")
        );
        assert!(env.is_empty());
        let (_, args, env) = argv(&cfg(AgentKind::Claude), true);
        assert_eq!(
            args,
            words("-p --output-format json --dangerously-skip-permissions --model m1 --max-turns 30 --x")
        );
        assert_eq!(env, vec![("IS_SANDBOX".to_string(), "1".to_string())]);
    }

    #[test]
    fn codex_argv_keeps_stdin_dash_last() {
        let (program, args, env) = argv(&cfg(AgentKind::Codex), true);
        assert_eq!(program, "codex");
        assert_eq!(
            args,
            words(
                "exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check \
                 -C /work/tree -o /logs/s.log.final.txt --model m1 --x -"
            )
        );
        assert!(env.is_empty());
        let line = command_line(
            &AgentConfig::default(),
            Path::new("/d"),
            Path::new("/o"),
            false,
        )
        .expect("claude");
        assert_eq!(line.output_file, None);
        let line = command_line(
            &cfg(AgentKind::Codex),
            Path::new("/d"),
            Path::new("/o"),
            false,
        )
        .expect("codex");
        assert_eq!(line.output_file, Some(PathBuf::from("/o")));
    }

    #[test]
    fn gemini_and_opencode_argv() {
        let (program, args, _) = argv(
            &AgentConfig {
                kind: AgentKind::Gemini,
                ..AgentConfig::default()
            },
            false,
        );
        assert_eq!(program, "gemini");
        assert_eq!(
            args,
            [
                "-p",
                "",
                "-o",
                "json",
                "--approval-mode",
                "yolo",
                "--skip-trust"
            ]
        );
        let (_, args, _) = argv(&cfg(AgentKind::Gemini), false);
        assert!(args.ends_with(&words("--skip-trust --model m1 --x")));

        let (program, args, _) = argv(
            &AgentConfig {
                kind: AgentKind::Opencode,
                ..AgentConfig::default()
            },
            false,
        );
        assert_eq!(program, "opencode");
        assert_eq!(args, words("run --format json --auto --dir /work/tree"));
        let (_, args, _) = argv(&cfg(AgentKind::Opencode), false);
        assert_eq!(
            args,
            words("run --format json --auto --dir /work/tree --model m1 --x")
        );
    }

    #[test]
    fn custom_command_is_split_like_a_shell_without_one() {
        let c = AgentConfig {
            kind: AgentKind::Custom,
            custom_command: Some(r#"my-agent --flag "two words" 'single $HOME' a\ b"#.into()),
            extra_args: vec!["--extra".into()],
            program: Some(PathBuf::from("ignored-for-custom")),
            ..AgentConfig::default()
        };
        let (program, args, _) = argv(&c, true);
        assert_eq!(program, "my-agent");
        assert_eq!(
            args,
            ["--flag", "two words", "single $HOME", "a b", "--extra"]
        );

        for bad in [None, Some(""), Some("   "), Some("agent 'unclosed")] {
            let c = AgentConfig {
                kind: AgentKind::Custom,
                custom_command: bad.map(String::from),
                ..AgentConfig::default()
            };
            let err =
                command_line(&c, Path::new("/d"), Path::new("/o"), false).expect_err("bad command");
            assert!(matches!(err, AgentError::BadCommand { .. }), "{bad:?}");
        }
    }

    #[test]
    fn program_override_replaces_the_preset_binary() {
        let c = AgentConfig {
            program: Some(PathBuf::from("/opt/claude-2/bin/claude")),
            ..AgentConfig::default()
        };
        assert_eq!(argv(&c, false).0, "/opt/claude-2/bin/claude");
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in AgentKind::ALL {
            assert_eq!(kind.to_string().parse::<AgentKind>().expect("parse"), kind);
        }
        assert_eq!(
            " Claude ".parse::<AgentKind>().expect("parse"),
            AgentKind::Claude
        );
        let err = "copilot".parse::<AgentKind>().expect_err("unknown");
        assert_eq!(err.to_string(), "unknown agent 'copilot'");
        assert_eq!(AgentKind::default(), AgentKind::Claude);
    }

    #[test]
    fn missing_cli_names_the_preset_and_how_to_choose_another() {
        let err = resolve_program(
            AgentKind::Gemini,
            Path::new("gemini-not-installed-xyz"),
            Path::new("/"),
        )
        .expect_err("not found");
        assert!(err.to_string().contains("'gemini' agent preset"));
        let hints = err.hints().join("\n");
        assert!(
            hints.contains("--agent")
                && hints.contains("git config teleos.agent")
                && hints.contains("teleos.agentCommand")
        );
        let e: crate::Error = err.into();
        assert_eq!(e.exit_code(), crate::ExitCode::USAGE);
        assert!(!e.hints().is_empty());
    }

    #[test]
    fn relative_program_paths_resolve_against_the_checkout() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("bin")).expect("mkdir");
        let exe = dir.path().join("bin/agent");
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let found = resolve_program(AgentKind::Custom, Path::new("./bin/agent"), dir.path())
            .expect("found");
        assert_eq!(found.canonicalize().ok(), exe.canonicalize().ok());
    }

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
