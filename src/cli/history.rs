//! `git teleos history [--json]`: one line per recorded batch, newest first. A record that
//! cannot be read is listed as such; it never stops the listing.

use serde_json::{json, Value};

use crate::batch::results::{self, BatchReport, Outcome};
use crate::error::Error;
use crate::report::table::{Align, Table};
use crate::report::timeline::{human_duration, parse_iso8601, totals};
use crate::settings::Overrides;

use super::{Context, GlobalArgs};

/// List past batches, newest first: when, mode, stories, outcomes, time, cost, landed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One line of the history.
struct Line {
    /// Sort key: when the batch started (Unix seconds), or the file's time when unreadable.
    when: i64,
    value: Value,
}

fn line_of(r: &BatchReport) -> Value {
    let t = totals(r);
    let failed = r.count(Outcome::Error)
        + r.count(Outcome::Conflict)
        + r.count(Outcome::NotStarted)
        + r.count(Outcome::GateFailed)
        + r.count(Outcome::IntegrationFailed);
    json!({
        "session_id": r.session_id,
        "started_at": r.started_at,
        "mode": r.mode,
        "agent": r.agent,
        "stories": r.stories.len(),
        "completed": r.count(Outcome::Completed),
        "partial": r.count(Outcome::Partial),
        "failed": failed,
        "wall_secs": t.wall_secs,
        "agent_secs": t.agent_secs,
        "cost_usd": r.total_cost(),
        "landed": landed(r),
    })
}

/// Whether the batch's work is on the branch it started from: not when landing failed, was
/// turned off (`--no-land`), or the batch was interrupted before landing.
fn landed(r: &BatchReport) -> bool {
    let said = |prefix: &str| r.notes.iter().any(|n| n.starts_with(prefix));
    !r.not_landed && !said("--no-land") && !said("interrupted:")
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let ctx = Context::open(global, &Overrides::default())?;
    let records = results::load_all(ctx.repo.common_dir())?;
    let mut lines: Vec<Line> = records
        .into_iter()
        .map(|rec| match rec.report {
            Ok(r) => Line {
                when: r
                    .started_ms
                    .map(|ms| ms / 1000)
                    .or_else(|| parse_iso8601(&r.started_at))
                    .unwrap_or(rec.modified),
                value: line_of(&r),
            },
            Err(e) => Line {
                when: rec.modified,
                value: json!({
                    "file": rec.path.display().to_string(),
                    "unreadable": e.to_string(),
                }),
            },
        })
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.when));
    let mut out = std::io::stdout().lock();
    if args.json {
        let values: Vec<&Value> = lines.iter().map(|l| &l.value).collect();
        super::print_json(&mut out, &values)?;
        return Ok(0);
    }
    if lines.is_empty() {
        eprintln!("No batch has run in this repository yet.");
        return Ok(0);
    }
    let mut t = Table::new(&[
        ("WHEN", Align::Left),
        ("SESSION", Align::Left),
        ("MODE", Align::Left),
        ("STORIES", Align::Right),
        ("DONE/PART/FAIL", Align::Right),
        ("WALL", Align::Right),
        ("AGENT", Align::Right),
        ("COST", Align::Right),
        ("LANDED", Align::Left),
    ]);
    for l in &lines {
        let v = &l.value;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        if let Some(why) = v.get("unreadable").and_then(Value::as_str) {
            let file = s("file");
            let stem = std::path::Path::new(&file)
                .file_stem()
                .map(|x| x.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut cells = vec![crate::time::iso8601(l.when), stem, "unreadable".into()];
            cells.extend(std::iter::repeat_n(String::new(), 5));
            // The reason goes in the last column, which is never padded.
            cells.push(why.lines().next().unwrap_or(why).to_string());
            t.row(cells);
            continue;
        }
        t.row(vec![
            s("started_at"),
            s("session_id"),
            s("mode"),
            n("stories").to_string(),
            format!("{}/{}/{}", n("completed"), n("partial"), n("failed")),
            v.get("wall_secs")
                .and_then(Value::as_f64)
                .map_or_else(|| "-".into(), human_duration),
            v.get("agent_secs")
                .and_then(Value::as_f64)
                .map_or_else(|| "-".into(), human_duration),
            v.get("cost_usd")
                .and_then(Value::as_f64)
                .map_or_else(|| "-".into(), |c| format!("${c:.2}")),
            if v.get("landed").and_then(Value::as_bool) == Some(true) {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    t.write(&mut out).map_err(super::out_err)?;
    Ok(0)
}
