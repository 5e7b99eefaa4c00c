//! Gates: the project's own checks (its test suite, usually), run on every story's work and on
//! the integrated result before anything lands. This module decides *which* commands are gates
//! (configuration or detection from the project's files) and runs one; what happens when a gate
//! is red (repair, ejection) is the batch's business (`batch::gate`).
//!
//! A gate is a command line split like a shell would split it and run without one, so nothing
//! in a configured command is ever interpolated; `sh -c '…'` is there for who wants a shell.

pub mod detect;
pub mod run;

use std::path::Path;

use crate::settings::GateSetting;

pub use run::{run_gate, GateResult};

/// One check to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The command as the user would type it (for messages and the report).
    pub command: String,
    /// `command` split like a shell would.
    pub argv: Vec<String>,
    /// Why this gate runs: `--gate`, `teleos.gate`, or the file it was detected from.
    pub why: String,
}

impl Gate {
    /// `None` when the command cannot be split (unbalanced quotes) or is empty.
    pub fn new(command: &str, why: impl Into<String>) -> Option<Gate> {
        let argv = shlex::split(command).filter(|a| !a.is_empty())?;
        Some(Gate {
            command: command.trim().to_string(),
            argv,
            why: why.into(),
        })
    }
}

/// The gates of a batch, as the plan prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatePlan {
    /// Turned off; the string says by what.
    Off(String),
    /// Auto-detection found nothing to run.
    NoneDetected,
    Gates(Vec<Gate>),
}

impl GatePlan {
    /// Resolve the setting against the project in `root`.
    pub fn resolve(setting: &GateSetting, root: &Path) -> GatePlan {
        match setting {
            GateSetting::Off(by) => GatePlan::Off(by.clone()),
            GateSetting::Commands(cmds, from) => GatePlan::Gates(
                cmds.iter()
                    .filter_map(|c| Gate::new(c, from.to_string()))
                    .collect(),
            ),
            GateSetting::Auto => {
                let found = detect::detect(root);
                if found.is_empty() {
                    GatePlan::NoneDetected
                } else {
                    GatePlan::Gates(found)
                }
            }
        }
    }

    /// The gates to run (empty when off or none was found).
    pub fn gates(&self) -> &[Gate] {
        match self {
            GatePlan::Gates(g) => g,
            _ => &[],
        }
    }

    /// One line per gate for the plan, or why none runs.
    pub fn describe(&self) -> Vec<String> {
        match self {
            GatePlan::Off(by) => vec![format!("Gates: off ({by}); stories land unchecked")],
            GatePlan::NoneDetected => vec![
                "Gates: none detected (no package.json test script, Cargo.toml, pytest configuration, go.mod or Makefile test target); set teleos.gate or pass --gate".to_string(),
            ],
            GatePlan::Gates(g) => {
                let mut lines = vec![format!(
                    "Gates: {} on every story and on the integrated result:",
                    if g.len() == 1 { "1 check".to_string() } else { format!("{} checks", g.len()) }
                )];
                lines.extend(g.iter().map(|g| format!("  $ {}   ({})", g.command, g.why)));
                lines
            }
        }
    }

    /// The debrief's sentence when no gate ran, `None` when gates ran.
    pub fn off_note(&self) -> Option<String> {
        match self {
            GatePlan::Off(by) => Some(format!(
                "gates were off ({by}): no check of the project ran; \"completed\" means boxes and commit verified only"
            )),
            GatePlan::NoneDetected => Some(
                "no gate was detected or configured (teleos.gate): no check of the project ran; \"completed\" means boxes and commit verified only"
                    .to_string(),
            ),
            GatePlan::Gates(_) => None,
        }
    }
}
