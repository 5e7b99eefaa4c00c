//! `git teleos debrief`: show the last batch's results again (phase 4).

use serde_json::json;

use crate::batch::results;
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
        super::print_json(&mut out, &entries)?;
        return Ok(0);
    }
    super::print_report(&mut out, &report, args.json)?;
    Ok(report.exit_code())
}
