//! Which agent CLI to run and the exact command line each preset needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::AgentError;
use super::kind::AgentKind;

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
}
