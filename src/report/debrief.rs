//! Phase 4: the debrief tables and final summary (ARCHITECTURE.md, "Bird's-eye view").

use std::io::{self, Write};

use console::style;

use super::table::{Align, Table};
use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::gate::GateResult;

fn short(hash: &Option<String>) -> String {
    hash.as_deref()
        .map(|h| h.chars().take(10).collect())
        .unwrap_or_else(|| "-".into())
}

fn heading(w: &mut dyn Write, text: &str) -> io::Result<()> {
    writeln!(w)?;
    writeln!(w, "{}", style(text).bold())
}

pub fn render(w: &mut dyn Write, report: &BatchReport) -> io::Result<()> {
    let of = |o: Outcome| -> Vec<&StoryResult> {
        report.stories.iter().filter(|s| s.outcome == o).collect()
    };
    writeln!(
        w,
        "{} session {} ({}, agent {})",
        style("Debrief").bold(),
        report.session_id,
        report.mode,
        report.agent
    )?;

    let completed = of(Outcome::Completed);
    if !completed.is_empty() {
        heading(w, "Completed")?;
        let mut t = Table::new(&[
            ("KEY", Align::Left),
            ("DONE/TOTAL", Align::Right),
            ("COMMIT", Align::Left),
            ("COST", Align::Right),
        ]);
        for s in &completed {
            t.row(vec![
                s.story_key.clone(),
                format!("{}/{}", s.tasks_done, s.tasks_total),
                short(&s.commit_hash),
                s.cost_usd
                    .map(|c| format!("${c:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        t.write(w)?;
    }

    let partial = of(Outcome::Partial);
    if !partial.is_empty() {
        heading(w, "Partially blocked")?;
        let mut t = Table::new(&[
            ("KEY", Align::Left),
            ("DONE/TOTAL", Align::Right),
            ("BLOCKED", Align::Right),
            ("COMMIT", Align::Left),
        ]);
        for s in &partial {
            t.row(vec![
                s.story_key.clone(),
                format!("{}/{}", s.tasks_done, s.tasks_total),
                s.tasks_blocked.to_string(),
                short(&s.commit_hash),
            ]);
        }
        t.write(w)?;
    }

    let routed = of(Outcome::Routed);
    if !routed.is_empty() {
        heading(w, "Routed to pipeline")?;
        let mut t = Table::new(&[
            ("KEY", Align::Left),
            ("TOTAL", Align::Right),
            ("UNCHECKED", Align::Right),
            ("%", Align::Right),
        ]);
        for s in &routed {
            t.row(vec![
                s.story_key.clone(),
                s.tasks_total.to_string(),
                s.unchecked_before.to_string(),
                format!("{:.0}%", s.pct_unchecked),
            ]);
        }
        t.write(w)?;
    }

    let with_questions: Vec<&StoryResult> = report
        .stories
        .iter()
        .filter(|s| !s.blocker_questions.is_empty())
        .collect();
    if !with_questions.is_empty() {
        heading(w, "Blocker questions")?;
        for s in with_questions {
            writeln!(w, "  {}", style(&s.story_key).bold())?;
            for q in &s.blocker_questions {
                writeln!(w, "    - {}", q.task)?;
                writeln!(w, "      ? {}", q.question)?;
            }
        }
    }

    let with_human: Vec<&StoryResult> = report
        .stories
        .iter()
        .filter(|s| !s.human_validation_tasks.is_empty())
        .collect();
    if !with_human.is_empty() {
        heading(w, "Human validation")?;
        for s in with_human {
            writeln!(w, "  {}", style(&s.story_key).bold())?;
            for t in &s.human_validation_tasks {
                writeln!(w, "    - [ ] {t}")?;
            }
        }
    }

    let failed: Vec<&StoryResult> = report
        .stories
        .iter()
        .filter(|s| {
            matches!(
                s.outcome,
                Outcome::Error
                    | Outcome::Conflict
                    | Outcome::NotStarted
                    | Outcome::GateFailed
                    | Outcome::IntegrationFailed
            )
        })
        .collect();
    if !failed.is_empty() {
        heading(w, "Errors")?;
        let mut t = Table::new(&[
            ("KEY", Align::Left),
            ("OUTCOME", Align::Left),
            ("MESSAGE", Align::Left),
        ]);
        for s in &failed {
            let outcome = match s.outcome {
                Outcome::Conflict => "conflict",
                Outcome::NotStarted => "not started",
                Outcome::GateFailed => "gate failed",
                Outcome::IntegrationFailed => "integration failed",
                _ => "error",
            };
            t.row(vec![
                s.story_key.clone(),
                outcome.into(),
                s.error_message.clone().unwrap_or_default(),
            ]);
        }
        t.write(w)?;
    }

    gates(w, report)?;

    let with_discrepancies: Vec<&StoryResult> = report
        .stories
        .iter()
        .filter(|s| !s.discrepancies.is_empty())
        .collect();
    if !with_discrepancies.is_empty() {
        heading(w, "Claims that did not hold")?;
        for s in with_discrepancies {
            for d in &s.discrepancies {
                writeln!(w, "  {}: {d}", s.story_key)?;
            }
        }
    }

    // Parallel mode: the statuses git-teleos wrote (the single-writer rule, `stories::tracker`).
    let tracked: Vec<&StoryResult> = report
        .stories
        .iter()
        .filter(|s| s.tracker_status.is_some())
        .collect();
    if !tracked.is_empty() {
        heading(
            w,
            "Sprint tracker (set by git-teleos when each story merged)",
        )?;
        for s in tracked {
            writeln!(
                w,
                "  {}: {}",
                s.story_key,
                s.tracker_status.as_deref().unwrap_or_default()
            )?;
        }
    }

    let kept: Vec<&StoryResult> = report
        .stories
        .iter()
        .filter(|s| s.rescue_ref.is_some())
        .collect();
    if !kept.is_empty() {
        heading(w, "Work kept on refs")?;
        for s in kept {
            if let Some(r) = &s.rescue_ref {
                writeln!(w, "  {}: {r}   (git log {r})", s.story_key)?;
            }
        }
    }

    let logs: Vec<&StoryResult> = report
        .stories
        .iter()
        .filter(|s| s.log_path.is_some())
        .collect();
    if !logs.is_empty() {
        heading(w, "Agent logs")?;
        for s in logs {
            if let Some(p) = &s.log_path {
                writeln!(w, "  {}: {}", s.story_key, p.display())?;
            }
        }
    }

    if !report.notes.is_empty() {
        heading(w, "Notes")?;
        for n in &report.notes {
            writeln!(w, "  {n}")?;
        }
    }

    heading(w, "Summary")?;
    let questions = report.blocker_questions();
    let human = report.human_validation_tasks();
    writeln!(w, "  Selected:           {}", report.stories.len())?;
    writeln!(
        w,
        "  Completed:          {}",
        report.count(Outcome::Completed)
    )?;
    writeln!(
        w,
        "  Partially blocked:  {}",
        report.count(Outcome::Partial)
    )?;
    writeln!(w, "  Routed to pipeline: {}", report.count(Outcome::Routed))?;
    // The rows of the Errors section, so the counts add up to "Selected"; what they are
    // follows in brackets.
    let (conflicts, not_started) = (
        report.count(Outcome::Conflict),
        report.count(Outcome::NotStarted),
    );
    let mut kinds = Vec::new();
    if conflicts > 0 {
        kinds.push(format!(
            "{conflicts} conflict{}",
            if conflicts == 1 { "" } else { "s" }
        ));
    }
    if not_started > 0 {
        kinds.push(format!("{not_started} not started"));
    }
    for (o, what) in [
        (Outcome::GateFailed, "gate failed"),
        (Outcome::IntegrationFailed, "integration failed"),
    ] {
        if report.count(o) > 0 {
            kinds.push(format!("{} {what}", report.count(o)));
        }
    }
    writeln!(
        w,
        "  Errors:             {}{}",
        failed.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    )?;
    writeln!(w, "  Blocker questions:  {questions}")?;
    writeln!(w, "  Human validation:   {human}")?;
    match &report.gates_off {
        Some(_) => writeln!(w, "  Gates:              off (see above)")?,
        None => writeln!(w, "  Gate time:          {:.1}s", report.gate_secs())?,
    }
    if let Some(c) = report.total_cost() {
        writeln!(w, "  Agent cost:         ${c:.2}")?;
    }
    let waited = report.rate_limit_wait_secs();
    if let Some(g) = report
        .governor
        .as_ref()
        .filter(|g| g.rate_limit_signals > 0)
    {
        writeln!(
            w,
            "  Rate limits:        {} signal(s), {waited:.0}s waited; agents at once went down to {} of {}, {} at the end",
            g.rate_limit_signals, g.min_limit, g.max_parallel, g.limit
        )?;
    } else if waited > 0.0 {
        writeln!(w, "  Rate limits:        {waited:.0}s waited")?;
    }
    for s in report
        .stories
        .iter()
        .filter(|s| s.rate_limit_wait_secs > 0.0)
    {
        writeln!(
            w,
            "    {} waited {:.0}s on rate limits",
            s.story_key, s.rate_limit_wait_secs
        )?;
    }
    if report.not_landed {
        writeln!(w, "  Landed:             no (see the notes)")?;
    }
    if let Some(why) = &report.stopped {
        writeln!(w, "  Stopped early:      {why}")?;
    }
    if questions > 0 {
        writeln!(w)?;
        writeln!(
            w,
            "Answer the questions and re-run the blocked stories:\n  git teleos debrief --answers-template > answers.json   # fill in each \"answer\"\n  git teleos close --retry-blocked --answers answers.json --yes"
        )?;
    }
    Ok(())
}

/// Lines of a red gate's output shown in the debrief (the JSON and the log have more).
const DEBRIEF_TAIL_LINES: usize = 15;

/// Per-story and integration gate runs, the output of the red ones, or that gates were off.
fn gates(w: &mut dyn Write, report: &BatchReport) -> io::Result<()> {
    if let Some(off) = &report.gates_off {
        heading(w, "Gates")?;
        writeln!(w, "  {off}")?;
        return Ok(());
    }
    let rows: Vec<(&str, &GateResult)> = report
        .stories
        .iter()
        .flat_map(|s| s.gates.iter().map(move |g| (s.story_key.as_str(), g)))
        .chain(
            report
                .integration_gates
                .iter()
                .map(|g| ("(integration)", g)),
        )
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    heading(w, "Gates")?;
    let mut t = Table::new(&[
        ("KEY", Align::Left),
        ("COMMAND", Align::Left),
        ("RESULT", Align::Left),
        ("TIME", Align::Right),
        ("LOG", Align::Left),
    ]);
    for (key, g) in &rows {
        t.row(vec![
            key.to_string(),
            g.command.clone(),
            if g.passed {
                "green".into()
            } else {
                format!("red: {}", g.status_text())
            },
            format!("{:.1}s", g.duration_secs),
            g.log_path.display().to_string(),
        ]);
    }
    t.write(w)?;
    let failed = report
        .stories
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::GateFailed | Outcome::IntegrationFailed));
    for s in failed {
        if let Some(g) = s.gates.iter().rev().find(|g| !g.passed) {
            writeln!(
                w,
                "  {} — output of `{}`:",
                style(&s.story_key).bold(),
                g.command
            )?;
            let lines: Vec<&str> = g.output_tail.lines().collect();
            for l in &lines[lines.len().saturating_sub(DEBRIEF_TAIL_LINES)..] {
                writeln!(w, "    | {l}")?;
            }
        }
    }
    Ok(())
}
