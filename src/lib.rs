//! git-teleos: close nearly-finished Markdown stories with coding-agent CLIs.
//!
//! Layers (dependencies point downwards only):
//! `cli` → `batch` → {`stories`, `agent`, `git`, `manifest`, `report`}.
//! Nothing below `cli` knows about flags or terminals. Every child process is started through
//! `process`, which depends on nothing else of ours.

pub mod agent;
pub mod batch;
pub mod cli;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod gate;
pub mod git;
pub mod manifest;
pub mod process;
pub mod remote;
pub mod report;
pub mod settings;
pub mod stories;
pub mod time;

pub use error::{Error, ExitCode};
