//! Phase 1's summary and tables (README, "Stories"), and its JSON (`scan_results`).

use std::io::{self, Write};

use console::style;
use serde_json::{json, Value};

use super::table::{Align, Table};
use crate::stories::{Category, ScanResult, Story};

/// The source workflow's `scan_results` shape, plus a summary and the cycles and warnings.
pub fn to_json(result: &ScanResult, threshold: f64) -> Value {
    let pick = |c: Category| -> Vec<&Story> {
        result.stories.iter().filter(|s| s.category == c).collect()
    };
    let (clean, closeable, pipeline) = (
        pick(Category::Clean),
        pick(Category::Closeable),
        pick(Category::NeedsPipeline),
    );
    json!({
        "total_stories_scanned": result.stories.len() + result.skipped.len(),
        "artifacts_dir": result.artifacts_dir,
        "artifacts_dirs": result.artifacts_dirs,
        "discovered_by": result.discovered_by,
        "sprint_status_files": result.sprint_status_files,
        "discovery": result.discovery,
        "threshold": threshold,
        "summary": {
            "clean": clean.len(),
            "closeable": closeable.len(),
            "needs_pipeline": pipeline.len(),
            "skipped": result.skipped.len(),
        },
        "clean": clean,
        "closeable": closeable,
        "needs_pipeline": pipeline,
        "skipped": result.skipped,
        "cycles": result.cycles,
        "warnings": result.warnings,
    })
}

fn pct_done(s: &Story) -> String {
    format!("{:.0}%", 100.0 - s.pct_unchecked)
}

fn status_of(s: &Story) -> String {
    match (&s.status, &s.sprint_status) {
        (Some(a), Some(b)) if a != b => format!("{a} (yaml: {b})"),
        (Some(a), _) => a.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => "-".into(),
    }
}

/// The columns both story tables start with: the number a user picks by, the key, the counts.
const NUMBERED_COUNTS: [(&str, Align); 5] = [
    ("#", Align::Right),
    ("KEY", Align::Left),
    ("TOTAL", Align::Right),
    ("DONE", Align::Right),
    ("LEFT", Align::Right),
];

/// A table of `NUMBERED_COUNTS` and then the `rest` columns.
fn numbered_table(rest: &[(&str, Align)]) -> Table {
    Table::new(&[&NUMBERED_COUNTS[..], rest].concat())
}

/// The cells of `NUMBERED_COUNTS` for story `s`, then `rest`.
fn numbered_row(number: usize, s: &Story, rest: Vec<String>) -> Vec<String> {
    let mut row = vec![
        number.to_string(),
        s.story_key.clone(),
        s.total.to_string(),
        s.checked.to_string(),
        s.unchecked.to_string(),
    ];
    row.extend(rest);
    row
}

/// The closeable table, numbered so a user can pick by number.
pub fn closeable_table(stories: &[&Story]) -> Table {
    let mut t = numbered_table(&[
        ("DONE%", Align::Right),
        ("HUMAN", Align::Right),
        ("DEPENDS ON", Align::Left),
        ("STATUS", Align::Left),
    ]);
    for (i, s) in stories.iter().enumerate() {
        let depends_on = if s.depends_on.is_empty() {
            "-".into()
        } else {
            s.depends_on.join(",")
        };
        t.row(numbered_row(
            i + 1,
            s,
            vec![
                pct_done(s),
                s.human_validation_tasks.len().to_string(),
                depends_on,
                status_of(s),
            ],
        ));
    }
    t
}

/// The needs-pipeline table, numbered after the closeable ones.
pub fn pipeline_table(stories: &[&Story], first_number: usize) -> Table {
    let mut t = numbered_table(&[("LEFT%", Align::Right), ("STATUS", Align::Left)]);
    for (i, s) in stories.iter().enumerate() {
        t.row(numbered_row(
            first_number + i,
            s,
            vec![format!("{:.0}%", s.pct_unchecked), status_of(s)],
        ));
    }
    t
}

pub fn render(w: &mut dyn Write, result: &ScanResult, threshold: f64) -> io::Result<()> {
    let of = |c: Category| -> Vec<&Story> {
        result.stories.iter().filter(|s| s.category == c).collect()
    };
    let (clean, closeable, pipeline) = (
        of(Category::Clean),
        of(Category::Closeable),
        of(Category::NeedsPipeline),
    );
    let pct = (threshold * 100.0).round();
    let dirs: Vec<String> = if result.artifacts_dirs.is_empty() {
        vec![result.artifacts_dir.display().to_string()]
    } else {
        result
            .artifacts_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect()
    };
    writeln!(
        w,
        "Scanned {} files in {}",
        result.stories.len() + result.skipped.len(),
        dirs.join(", ")
    )?;
    writeln!(w, "  found by {}", result.discovered_by.describe())?;
    for note in &result.discovery {
        writeln!(w, "  {}", style(note).dim())?;
    }
    writeln!(w)?;
    writeln!(w, "  Clean (all tasks done):      {:>4}", clean.len())?;
    writeln!(
        w,
        "  Closeable (<= {pct}% left):     {:>4}",
        closeable.len()
    )?;
    writeln!(w, "  Needs pipeline (> {pct}% left): {:>4}", pipeline.len())?;
    writeln!(
        w,
        "  Skipped:                     {:>4}",
        result.skipped.len()
    )?;

    if !closeable.is_empty() {
        writeln!(w)?;
        writeln!(w, "{}", style("Closeable").green().bold())?;
        closeable_table(&closeable).write(w)?;
    }
    if !pipeline.is_empty() {
        writeln!(w)?;
        writeln!(w, "{}", style("Needs pipeline").yellow().bold())?;
        pipeline_table(&pipeline, closeable.len() + 1).write(w)?;
    }
    if !clean.is_empty() {
        writeln!(w)?;
        writeln!(w, "{} {}", style("Clean:").bold(), clean.len())?;
    }
    if !result.skipped.is_empty() {
        writeln!(w)?;
        writeln!(w, "{}", style("Skipped").dim().bold())?;
        let mut t = Table::new(&[("FILE", Align::Left), ("REASON", Align::Left)]);
        for s in &result.skipped {
            t.row(vec![s.filename.clone(), s.reason.clone()]);
        }
        t.write(w)?;
    }
    if !result.cycles.is_empty() || !result.warnings.is_empty() {
        writeln!(w)?;
        writeln!(w, "{}", style("Notes").bold())?;
        for c in &result.cycles {
            writeln!(
                w,
                "  dependency cycle {} -> {} (broken at the last edge)",
                c.join(" -> "),
                c.first().map(String::as_str).unwrap_or("")
            )?;
        }
        for n in &result.warnings {
            writeln!(w, "  {n}")?;
        }
    }
    if closeable.is_empty() && pipeline.is_empty() {
        writeln!(w)?;
        writeln!(w, "Nothing to close.")?;
    }
    Ok(())
}
