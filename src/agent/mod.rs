//! The coding-agent CLI: presets, the prompt, running it as a child process, reading its result.
//! Knows nothing about git refs.

mod envelope;
pub mod error;
pub mod gate;
pub mod kind;
pub mod login;
pub mod preset;
pub mod prompt;
pub mod result;
pub mod run;

pub use error::AgentError;
pub use gate::StartGate;
pub use kind::{AgentKind, UnknownAgent};
pub use login::{login_status, preflight, LoginStatus};
pub use preset::{build_invocation, AgentConfig, Invocation};
pub use prompt::{
    build_prompt, build_repair_prompt, build_resolve_prompt, PromptInput, DEFAULT_INSTRUCTIONS,
};
pub use result::{
    extract_result, BlockerQuestion, ExtractError, ReviewSummary, WorkerResult, WorkerStatus,
};
pub use run::{run_agent, RunOutcome, RunRequest};
