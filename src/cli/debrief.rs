//! `git teleos debrief`: show the last batch's results again (phase 4).

use std::io::Write;

use serde_json::json;

use crate::batch::results;
use crate::error::Error;
use crate::settings::Overrides;

use super::{out_err, Context, GlobalArgs};

/// Show the debrief of the last batch again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the batch results as JSON.
    #[arg(long, conflicts_with = "answers_template")]
    pub json: bool,
    /// Print the blocker questions as a JSON answers file to fill in for `close --retry-blocked --answers`.
    #[arg(long)]
    pub answers_template: bool,
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let ctx = Context::open(global, &Overrides::default())?;
    let report = results::load_last(ctx.repo.common_dir())?.ok_or_else(|| {
        Error::usage_hint(
            "no batch has run in this repository yet",
            "run git teleos close first",
        )
    })?;
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
        let text = serde_json::to_string_pretty(&entries)
            .map_err(|e| Error::usage(format!("cannot encode JSON: {e}")))?;
        writeln!(out, "{text}").map_err(out_err)?;
        return Ok(0);
    }
    if args.json {
        let text = serde_json::to_string_pretty(&report.to_batch_results())
            .map_err(|e| Error::usage(format!("cannot encode JSON: {e}")))?;
        writeln!(out, "{text}").map_err(out_err)?;
    } else {
        crate::report::debrief::render(&mut out, &report).map_err(out_err)?;
    }
    Ok(report.exit_code())
}
