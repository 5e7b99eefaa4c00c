//! What can go wrong before or around an agent run (not a story failure: those are outcomes).

use super::kind::{AgentKind, UnknownAgent};
use crate::process::ProcessError;

/// A setup or I/O problem with the agent itself. A story the agent failed is not an error:
/// it is reported in [`super::RunOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    UnknownAgent(#[from] UnknownAgent),
    #[error("the '{kind}' agent preset runs '{program}', which was not found on PATH")]
    NotFound { kind: AgentKind, program: String },
    #[error("the '{kind}' agent is not logged in{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    NotLoggedIn { kind: AgentKind, detail: String },
    #[error("bad agent command {command:?}: {reason}")]
    BadCommand { command: String, reason: String },
    #[error("could not start agent '{program}': {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the agent (or its login check) failed.
    #[error(transparent)]
    Process(ProcessError),
}

impl From<ProcessError> for AgentError {
    /// Keeps "could not start agent" (and its source) apart from other process failures.
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Spawn { command, source } => AgentError::Spawn {
                program: command.program_name(),
                source,
            },
            other => AgentError::Process(other),
        }
    }
}

const CHOOSE_AGENT_HINT: &str =
    "choose another agent with --agent <claude|codex|gemini|opencode|custom> \
     or: git config teleos.agent <name>";
const CUSTOM_COMMAND_HINT: &str =
    "or run any command with: git config teleos.agentCommand '<program> <args>' \
     (with --agent custom); the prompt arrives on its stdin";

impl AgentError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AgentError::Io {
            context: context.into(),
            source,
        }
    }

    /// Hints printed after the message, one `hint:` line each.
    pub fn hints(&self) -> Vec<String> {
        match self {
            AgentError::UnknownAgent(_) => vec![
                "known agents: claude, codex, gemini, opencode, custom".into(),
                CUSTOM_COMMAND_HINT.into(),
            ],
            AgentError::NotFound {
                kind: AgentKind::Custom,
                ..
            } => vec![
                "check the first word of teleos.agentCommand / --agent-command".into(),
                CHOOSE_AGENT_HINT.into(),
            ],
            AgentError::NotFound { kind, .. } => vec![
                format!("install the '{kind}' CLI, or {CHOOSE_AGENT_HINT}"),
                CUSTOM_COMMAND_HINT.into(),
            ],
            AgentError::NotLoggedIn { kind, .. } => {
                // Each CLI's own advice (claude-code 2.1, codex 0.171, gemini-cli 0.61).
                let login = match kind {
                    AgentKind::Claude => {
                        "run 'claude auth login' (or set ANTHROPIC_API_KEY)".to_string()
                    }
                    AgentKind::Codex => "run 'codex login' (or set OPENAI_API_KEY)".to_string(),
                    AgentKind::Gemini => {
                        "set GEMINI_API_KEY, or run 'gemini' once and choose how to log in"
                            .to_string()
                    }
                    other => format!("run '{other}' once and log in"),
                };
                vec![login, CHOOSE_AGENT_HINT.into()]
            }
            AgentError::BadCommand { .. } => vec![
                "teleos.agentCommand is split into words like a shell would (quotes, backslashes) \
                 but never run through a shell"
                    .into(),
            ],
            AgentError::Spawn { .. } | AgentError::Io { .. } | AgentError::Process(_) => Vec::new(),
        }
    }
}

impl From<AgentError> for crate::Error {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Io { context, source } => crate::Error::Io { context, source },
            AgentError::Process(e) => crate::Error::Process(e),
            other => crate::Error::Setup {
                message: other.to_string(),
                hints: other.hints(),
            },
        }
    }
}

impl From<UnknownAgent> for crate::Error {
    fn from(e: UnknownAgent) -> Self {
        AgentError::from(e).into()
    }
}
