//! `git teleos debrief`: show the last batch's results again (phase 4).

use serde_json::json;

use std::io::Write;

use crate::error::Error;
use crate::settings::Overrides;

use super::{Context, GlobalArgs};

/// Show the debrief of the last batch again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the batch results as JSON.
    #[arg(long, conflicts_with = "answers_template")]
    pub json: bool,
    /// Print the blocker questions as a JSON answers file to fill in for `close --retry-blocked --answers`.
    #[arg(long)]
    pub answers_template: bool,
    /// Write the batch as a self-contained HTML report (timeline, summary, stories) to FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "answers_template"])]
    pub html: Option<std::path::PathBuf>,
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let ctx = Context::open(global, &Overrides::default())?;
    let common = ctx.repo.common_dir().to_path_buf();
    let report = super::report::load_last_or_explain(&common)?;
    if let Some(file) = &args.html {
        super::report::write_html(file, &report)?;
        eprintln!("HTML report written to {}", file.display());
        return Ok(report.exit_code());
    }
    let mut out = std::io::stdout().lock();
    if args.answers_template {
        let entries: Vec<_> = report
            .stories
            .iter()
            .flat_map(|s| {
                s.blocker_questions.iter().map(move |q| {
                    json!({"story_key": s.story_key, "task": q.task, "question": q.question, "answer": ""})
                })
            })
            .collect();
        super::print_json(&mut out, &entries)?;
        return Ok(0);
    }
    super::print_report(&mut out, &report, args.json)?;
    if !args.json {
        super::report::write_terminal_timeline(&mut out, &report)?;
        if let Some(h) = &ctx.settings.html_report {
            let path = h.path(&common, &ctx.root, &report.session_id);
            if path.exists() {
                writeln!(out, "\nHTML report: {}", path.display()).map_err(super::out_err)?;
            }
        }
    }
    Ok(report.exit_code())
}
