//! The command line: flags, subcommands, output streams, exit codes. The only layer that knows
//! about terminals; everything below takes settings and writers.

mod clean_orphans;
mod close;
mod completions;
mod context;
mod debrief;
mod demo;
mod history;
mod hooks;
pub mod man;
mod prompts;
mod report;
mod run_story;
mod scan;
mod status;
mod story_inputs;

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::error::{Error, ExitCode};

pub use context::Context;

const AFTER_HELP: &str = "\
Exit status: 0 all selected work done; 1 some work incomplete (partial, error, conflict);
2 usage or setup error; 3 internal error (a bug); 128+n stopped by signal n.

Settings come from flags, then `git config teleos.*`, then built-in defaults.
See `man git-teleos` (or `git teleos --help`) for every configuration key.";

/// Close nearly-finished Markdown stories by running a coding agent once per story.
#[derive(Debug, Parser)]
#[command(
    name = "git-teleos",
    bin_name = "git teleos",
    version,
    about = "Close nearly-finished Markdown stories with coding agents, one git worktree each",
    long_about = "git teleos finds stories (Markdown files whose tasks are checkboxes) that are \
nearly done and closes them by running a coding-agent CLI (Claude Code by default) once per \
story, one after another or several at once in their own git worktrees, then merges and \
verifies the work and reports blocker questions and human-validation tasks.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Run as if started in <PATH> (like `git -C`).
    #[arg(short = 'C', value_name = "PATH", global = true)]
    pub dir: Option<PathBuf>,
    /// When to use colour: auto follows NO_COLOR and whether the stream is a terminal.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print less progress on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Scan(scan::Args),
    Close(Box<close::Args>),
    Debrief(debrief::Args),
    Report(report::Args),
    History(history::Args),
    Status(status::Args),
    CleanOrphans(clean_orphans::Args),
    Hooks(hooks::Args),
    RunStory(run_story::Args),
    Demo(demo::Args),
    Completions(completions::Args),
    /// The demo's simulated agent (speaks Claude Code's protocol); not for direct use.
    #[command(hide = true, name = "simulated-agent")]
    SimulatedAgent(demo::AgentArgs),
}

/// The clap definition, for the man page and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Entry point: parse, run, print errors git-style, map to the documented exit codes.
pub fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version on stdout (exit 0) and usage errors on stderr (exit 2).
            let _ = e.print();
            let code = if e.use_stderr() { ExitCode::USAGE } else { 0 };
            return std::process::ExitCode::from(code);
        }
    };
    apply_color(cli.global.color);
    // The panic hook has printed where it happened; the exit code says it was a bug.
    let code = match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => report_error(&e),
        Err(_) => report_error(&Error::Internal("git-teleos panicked".into())),
    };
    std::process::ExitCode::from(code)
}

fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Scan(args) => scan::run(args, &cli.global),
        Command::Close(args) => close::run(*args, &cli.global),
        Command::Debrief(args) => debrief::run(args, &cli.global),
        Command::Report(args) => report::run(args, &cli.global),
        Command::History(args) => history::run(args, &cli.global),
        Command::Status(args) => status::run(args, &cli.global),
        Command::CleanOrphans(args) => clean_orphans::run(args, &cli.global),
        Command::Hooks(args) => hooks::run(args, &cli.global),
        Command::RunStory(args) => run_story::run(args, &cli.global),
        Command::Demo(args) => demo::run(args, &cli.global),
        Command::SimulatedAgent(args) => demo::simulated_agent(args),
        Command::Completions(args) => completions::run(args),
    }
}

/// `error: …` then `hint: …` lines on stderr. A closed stdout (`| head`) is not an error.
fn report_error(e: &Error) -> u8 {
    if let Error::Io { source, .. } = e {
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{} {e}",
        console::style("error:").red().bold().for_stderr()
    );
    for hint in e.hints() {
        let _ = writeln!(
            err,
            "{} {hint}",
            console::style("hint:").yellow().for_stderr()
        );
    }
    e.exit_code()
}

/// glibc gives each thread its own malloc arena and keeps freed memory in it; with a worker
/// thread per worktree plus gix's checkout threads, that tripled peak memory (measured with
/// the end-to-end benchmark: 75 MiB, against 23 MiB of live heap). One arena measured 30-35 MiB, two 48-53 MiB; contention costs nothing here,
/// the threads spend their time waiting on agents and the disk. Called before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Colour is decided once, for both streams: the flag, then NO_COLOR, then the terminal.
fn apply_color(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (out, err) = match choice {
        ColorChoice::Always => (true, true),
        ColorChoice::Never => (false, false),
        ColorChoice::Auto if no_color => (false, false),
        ColorChoice::Auto => (
            console::Term::stdout().is_term(),
            console::Term::stderr().is_term(),
        ),
    };
    console::set_colors_enabled(out);
    console::set_colors_enabled_stderr(err);
}

/// Print data as pretty JSON on stdout.
pub(crate) fn print_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::usage(format!("cannot encode JSON: {e}")))?;
    writeln!(out, "{text}").map_err(out_err)
}

/// A batch's results on stdout: the debrief tables, or `batch_results` as JSON.
pub(crate) fn print_report(
    out: &mut dyn Write,
    report: &crate::batch::results::BatchReport,
    json: bool,
) -> Result<(), Error> {
    if json {
        print_json(out, &report.to_batch_results())
    } else {
        crate::report::debrief::render(out, report).map_err(out_err)
    }
}

/// Map an I/O error on stdout into our error type (keeping BrokenPipe recognisable).
pub(crate) fn out_err(e: std::io::Error) -> Error {
    Error::io("writing output", e)
}
