//! Which agent CLI: the known presets and a custom command. Depends on nothing else in `agent`.

use std::fmt;
use std::str::FromStr;

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

/// A name that is none of [`AgentKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown agent '{name}'")]
pub struct UnknownAgent {
    pub name: String,
}

impl FromStr for AgentKind {
    type Err = UnknownAgent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        AgentKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| UnknownAgent {
                name: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
