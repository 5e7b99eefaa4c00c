//! Phase 1's summary and tables (README, "Stories"), and its JSON (`scan_results`).

use std::io::{self, Write};

use std::path::{Path, PathBuf};

use console::style;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::value::RawValue;

use super::table::{Align, Table};
use crate::error::Error;
use crate::stories::discover::DiscoveredBy;
use crate::stories::headings::HeadingTasks;
use crate::stories::{Category, ScanResult, Skipped, Story};

/// The source workflow's `scan_results` shape, plus a summary and the cycles and warnings.
/// Borrowed and serialized straight to text: building a `serde_json::Value` tree of thousands
/// of stories first cost more than scanning them (issue 11 §4).
#[derive(Serialize)]
pub struct ScanJson<'a> {
    total_stories_scanned: usize,
    artifacts_dir: &'a Path,
    artifacts_dirs: &'a [PathBuf],
    discovered_by: DiscoveredBy,
    sprint_status_files: &'a [PathBuf],
    discovery: &'a [String],
    threshold: f64,
    summary: Summary,
    clean: Vec<Box<RawValue>>,
    closeable: Vec<Box<RawValue>>,
    needs_pipeline: Vec<Box<RawValue>>,
    skipped: &'a [Skipped],
    cycles: &'a [Vec<String>],
    warnings: &'a [String],
}

#[derive(Serialize)]
struct Summary {
    clean: usize,
    closeable: usize,
    needs_pipeline: usize,
    skipped: usize,
}

/// A story, and for a heading-task story how its headings are marked (checkbox stories have
/// no `task_headings` key).
#[derive(Serialize)]
struct Entry<'a> {
    #[serde(flatten)]
    story: &'a Story,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_headings: Option<&'a HeadingTasks>,
}

pub fn to_json(result: &ScanResult, threshold: f64) -> Result<ScanJson<'_>, Error> {
    // Each story is rendered on rayon's threads, indented for its place (an element of a
    // top-level array: 4 more spaces on every line after its first; JSON text has no raw
    // newline inside a string), and spliced in verbatim: the same bytes as rendering the
    // whole at once, without the main thread doing it all.
    let entries = |c: Category| -> Result<Vec<Box<RawValue>>, Error> {
        let list: Vec<&Story> = result.stories.iter().filter(|s| s.category == c).collect();
        list.par_iter()
            .map(|s| {
                let entry = Entry {
                    story: s,
                    task_headings: result.heading_tasks.get(&s.story_key),
                };
                serde_json::to_string_pretty(&entry)
                    .and_then(|text| RawValue::from_string(text.replace('\n', "\n    ")))
                    .map_err(|e| Error::usage(format!("cannot encode JSON: {e}")))
            })
            .collect()
    };
    let (clean, closeable, needs_pipeline) = (
        entries(Category::Clean)?,
        entries(Category::Closeable)?,
        entries(Category::NeedsPipeline)?,
    );
    Ok(ScanJson {
        total_stories_scanned: result.stories.len() + result.skipped.len(),
        artifacts_dir: &result.artifacts_dir,
        artifacts_dirs: &result.artifacts_dirs,
        discovered_by: result.discovered_by,
        sprint_status_files: &result.sprint_status_files,
        discovery: &result.discovery,
        threshold,
        summary: Summary {
            clean: clean.len(),
            closeable: closeable.len(),
            needs_pipeline: needs_pipeline.len(),
            skipped: result.skipped.len(),
        },
        clean,
        closeable,
        needs_pipeline,
        skipped: &result.skipped,
        cycles: &result.cycles,
        warnings: &result.warnings,
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

/// How many stories write their tasks as headings, and how many of those count as done by
/// their status alone (README, "Stories").
fn heading_tasks_note(result: &ScanResult) -> Option<String> {
    let n = result.heading_tasks.len();
    if n == 0 {
        return None;
    }
    let by_status = result
        .heading_tasks
        .values()
        .filter(|h| h.done_by_status > 0)
        .count();
    let mut note = format!(
        "{n} {} {} tasks as `### Task N` headings (done when marked ✅, [x] or DONE)",
        if n == 1 { "story" } else { "stories" },
        if n == 1 { "writes its" } else { "write their" },
    );
    match (n, by_status) {
        (_, 0) => {}
        (1, _) => note.push_str(
            "; it counts as done by its status although some of its headings carry no done mark",
        ),
        (_, 1) => note.push_str(
            "; 1 of them counts as done by its status although some of its headings carry no \
             done mark",
        ),
        _ => note.push_str(&format!(
            "; {by_status} of them count as done by their status although some of their \
             headings carry no done mark"
        )),
    }
    Some(note)
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
    if let Some(note) = heading_tasks_note(result) {
        writeln!(w)?;
        writeln!(w, "{}", style(note).dim())?;
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
