//! `git teleos report [SID] --html FILE`: any recorded batch as a self-contained HTML page (or
//! its text debrief without `--html`). Also the HTML writing `debrief --html` and `close` share.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::batch::results::{self, BatchReport};
use crate::error::Error;
use crate::settings::Overrides;

use super::{Context, GlobalArgs};

/// Show a recorded batch (the last one by default), as text or as an HTML report.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session id of the batch (see `git teleos history`); default: the last batch.
    #[arg(value_name = "SID")]
    pub session: Option<String>,
    /// Write a self-contained HTML report (timeline, summary, stories) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let ctx = Context::open(global, &Overrides::default())?;
    let common = ctx.repo.common_dir().to_path_buf();
    let report = match &args.session {
        Some(sid) => results::load_session(&common, sid)?,
        None => load_last_or_explain(&common)?,
    };
    match &args.html {
        Some(file) => {
            write_html(file, &report)?;
            eprintln!("HTML report written to {}", file.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            super::print_report(&mut out, &report, false)?;
            write_terminal_timeline(&mut out, &report)?;
        }
    }
    Ok(report.exit_code())
}

/// The last batch, or a clear error when none ran.
pub(crate) fn load_last_or_explain(common: &Path) -> Result<BatchReport, Error> {
    results::load_last(common)?.ok_or_else(|| {
        Error::usage_hint(
            "no batch has run in this repository yet",
            "run git teleos close first",
        )
    })
}

/// Write the HTML report of `report` to `path` (atomically, creating its folder).
pub(crate) fn write_html(path: &Path, report: &BatchReport) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    crate::fsutil::write_atomic(path, crate::report::html::render(report).as_bytes())
}

/// The one-line-per-lane timeline that ends the text debrief: styled and as wide as the
/// terminal on a terminal, plain and 80 columns otherwise.
pub(crate) fn write_terminal_timeline(
    out: &mut dyn Write,
    report: &BatchReport,
) -> Result<(), Error> {
    let term = console::Term::stdout();
    let (styled, width) = if term.is_term() {
        (
            console::colors_enabled(),
            usize::from(term.size().1).clamp(40, 200),
        )
    } else {
        (false, 80)
    };
    crate::report::timeline::write_text(out, report, width, styled).map_err(super::out_err)
}
