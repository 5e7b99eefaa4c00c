//! The questions `close` asks on a terminal: sequential or parallel, confirm, and the
//! interactive selection (phase 2) with its tables.

use std::io::Write;

use crate::batch::select::{self, Request, Selection};
use crate::error::Error;
use crate::stories::{Category, ScanResult};

/// Ask sequential or parallel; `None` is sequential.
pub(super) fn ask_mode(default_slots: usize) -> Result<Option<usize>, Error> {
    loop {
        let a = read_answer(&format!(
            "Run [s]equentially in this checkout, or in [p]arallel worktrees ({default_slots} at once)? [p] "
        ))?;
        match a.to_ascii_lowercase().as_str() {
            "" | "p" | "parallel" => return Ok(Some(default_slots)),
            "s" | "sequential" => return Ok(None),
            other => match other.parse::<usize>() {
                Ok(n) if n > 0 => return Ok(Some(n)),
                _ => {
                    let _ = writeln!(std::io::stderr(), "answer s, p, or a number of worktrees");
                }
            },
        }
    }
}

fn read_answer(prompt: &str) -> Result<String, Error> {
    let term = console::Term::stderr();
    term.write_str(prompt)
        .map_err(|e| Error::io("writing to the terminal", e))?;
    term.read_line()
        .map(|l| l.trim().to_string())
        .map_err(|e| Error::io("reading from the terminal", e))
}

pub(super) fn confirm(question: &str) -> Result<bool, Error> {
    let a = read_answer(&format!("{question} [y/N] "))?;
    Ok(matches!(a.to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The interactive phase 2: tables, then the choices (all closeable, pick by number, all or
/// some needs-pipeline stories, quit).
pub(super) fn pick_interactively(
    scan: &ScanResult,
    threshold: f64,
) -> Result<Option<Selection>, Error> {
    let closeable: Vec<_> = scan
        .stories
        .iter()
        .filter(|s| s.category == Category::Closeable)
        .collect();
    let pipeline: Vec<_> = scan
        .stories
        .iter()
        .filter(|s| s.category == Category::NeedsPipeline)
        .collect();
    let clean = scan
        .stories
        .iter()
        .filter(|s| s.category == Category::Clean)
        .count();
    let mut err = std::io::stderr();
    if closeable.is_empty() && pipeline.is_empty() {
        let _ = writeln!(
            err,
            "Nothing to close: {clean} stories are clean, none is closeable."
        );
        return Ok(None);
    }
    let pct = (threshold * 100.0).round();
    if !closeable.is_empty() {
        let _ = writeln!(err, "\nCloseable (<= {pct}% unchecked)");
        let _ = crate::report::scan::closeable_table(&closeable).write(&mut err);
    }
    if !pipeline.is_empty() {
        let _ = writeln!(err, "\nNeeds pipeline (> {pct}% unchecked)");
        let _ = crate::report::scan::pipeline_table(&pipeline, closeable.len() + 1).write(&mut err);
    }
    let _ = writeln!(err, "\nClean: {clean}\n");
    let _ = writeln!(err, "  [a] all {} closeable stories", closeable.len());
    let _ = writeln!(err, "  [p] pick closeable stories by number");
    let _ = writeln!(
        err,
        "  [i] all closeable and all {} needs-pipeline stories",
        pipeline.len()
    );
    let _ = writeln!(err, "  [s] all closeable and some needs-pipeline stories");
    let _ = writeln!(err, "  [q] quit");
    let keys_of =
        |picked: &[usize], from: &[&crate::stories::Story], offset: usize| -> Vec<String> {
            picked
                .iter()
                .filter_map(|n| from.get(n - 1 - offset).map(|s| s.story_key.clone()))
                .collect()
        };
    let all_closeable: Vec<String> = closeable.iter().map(|s| s.story_key.clone()).collect();
    loop {
        let choice = read_answer("Choice: ")?;
        let keys = match choice.as_str() {
            "a" => all_closeable.clone(),
            "i" => {
                let mut k = all_closeable.clone();
                k.extend(pipeline.iter().map(|s| s.story_key.clone()));
                k
            }
            "p" | "s" => {
                let (from, offset) = if choice == "p" {
                    (&closeable, 0)
                } else {
                    (&pipeline, closeable.len())
                };
                if from.is_empty() {
                    let _ = writeln!(err, "nothing to pick there");
                    continue;
                }
                let range = format!("{}-{}", offset + 1, offset + from.len());
                let text = read_answer(&format!("Numbers ({range}, e.g. {}): ", offset + 1))?;
                let numbers = match select::parse_numbers(&text, offset + from.len()) {
                    Ok(n) if n.iter().all(|n| *n > offset) => n,
                    Ok(_) => {
                        let _ = writeln!(err, "pick numbers from {range}");
                        continue;
                    }
                    Err(e) => {
                        let _ = writeln!(err, "{e}");
                        continue;
                    }
                };
                let mut k = if choice == "s" {
                    all_closeable.clone()
                } else {
                    Vec::new()
                };
                k.extend(keys_of(&numbers, from, offset));
                k
            }
            "q" | "" => return Ok(None),
            _ => {
                let _ = writeln!(err, "answer a, p, i, s or q");
                continue;
            }
        };
        let req = Request {
            keys,
            ..Request::default()
        };
        return select::select(scan, &req).map(Some);
    }
}
