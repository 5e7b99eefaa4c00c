//! The batch as one self-contained HTML page: an inline SVG timeline (one lane per worktree
//! slot, one bar per attempt, phase marks underneath), the summary, a row per story, and the
//! questions, human tasks and claims that did not hold, as in the text debrief.
//!
//! Plain `format!` instead of a template or SVG crate: the page is a few fixed blocks, and
//! the one thing that must be right, escaping, is a single function used for every value that
//! comes from a story or an agent. Nothing is loaded from outside (no scripts, fonts, images
//! or URLs), so the file opens offline and can be attached anywhere.

use std::fmt::Write as _;

use crate::batch::results::{BatchReport, Outcome, StoryResult};
use crate::batch::timing::{self, Phase};
use crate::report::timeline::{human_duration, totals, Bar, Timeline};

/// Escape text for HTML/SVG element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 forbids most control characters even escaped; SVG is parsed as XML.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// How each outcome is drawn: CSS class suffix, label, fill colour, pattern (so colour is
/// never the only signal). Unknown outcome names get a neutral look and their own name.
fn outcome_style(name: &str) -> (&'static str, &'static str, &'static str) {
    match name {
        "completed" => ("completed", "#2e7d32", ""),
        "partial" => ("partial", "#b7791f", "p-stripes"),
        "blocked" => ("blocked", "#c05621", "p-dots"),
        "error" => ("error", "#c62828", "p-cross"),
        "conflict" => ("conflict", "#6b46c1", "p-zigzag"),
        "gate_failed" => ("gate failed", "#b83280", "p-hlines"),
        "ejected" | "integration_failed" => ("ejected", "#4a5568", "p-vlines"),
        "routed" => ("routed", "#2b6cb0", ""),
        "not_started" => ("not started", "#718096", ""),
        _ => ("other", "#718096", "p-dots"),
    }
}

/// Phase marks under each bar.
fn phase_fill(phase: &str) -> &'static str {
    match phase {
        timing::SETUP => "#a0aec0",
        timing::AGENT => "#2c5282",
        timing::MERGE => "#38a169",
        timing::RESOLVE | timing::REPAIR => "#dd6b20",
        timing::PIPELINE => "#3182ce",
        timing::GATE => "#805ad5",
        timing::WAIT_DEPENDENCY | timing::RATE_LIMIT_WAIT => "url(#p-wait)",
        _ => "#718096",
    }
}

const LEGEND_OUTCOMES: [&str; 7] = [
    "completed",
    "partial",
    "blocked",
    "error",
    "conflict",
    "gate_failed",
    "ejected",
];
const LEGEND_PHASES: [&str; 7] = [
    timing::SETUP,
    timing::AGENT,
    timing::GATE,
    timing::REPAIR,
    timing::MERGE,
    timing::WAIT_DEPENDENCY,
    timing::RATE_LIMIT_WAIT,
];

const CSS: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #1a202c; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #e2e8f0; padding-bottom: 4px; }
.meta { color: #4a5568; margin: 0 0 16px; }
.layout { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.timeline { flex: 1 1 760px; min-width: 0; }
.summary { flex: 0 0 250px; }
.summary dl { display: grid; grid-template-columns: auto auto; gap: 2px 16px; margin: 0; }
.summary dt { color: #4a5568; }
.summary dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #1a202c; }
svg .lbl { font-weight: 600; }
svg .on-bar { fill: #fff; font-weight: 600; paint-order: stroke; stroke: rgba(0,0,0,.45); stroke-width: 2px; }
svg .tick { stroke: #e2e8f0; }
svg .bar:hover .box, svg .bar:focus .box { stroke: #000; stroke-width: 3; }
svg .bar:focus { outline: none; }
svg .bar { cursor: default; }
svg .tip { visibility: hidden; }
svg .tip-default { fill: #718096; font-style: italic; }
svg:has(.bar:hover, .bar:focus) .tip-default { visibility: hidden; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #edf2f7; vertical-align: top; }
th { background: #f7fafc; }
td.num { text-align: right; }
code { font: 12px ui-monospace, Menlo, Consolas, monospace; white-space: nowrap; }
td.path code { white-space: normal; word-break: break-all; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 12px; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 8px 0 0; padding: 0; list-style: none; font-size: 12px; }
.legend svg { display: inline-block; width: 22px; height: 12px; vertical-align: -2px; }
.empty { color: #4a5568; font-style: italic; }
ul.plain { margin: 4px 0; padding-left: 20px; }
@media print {
  body { margin: 0; font-size: 10pt; }
  .layout { display: block; }
  .summary { margin-top: 12px; }
  section, tr, svg { break-inside: avoid; }
  svg .tips { display: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// The `<defs>` with the outcome patterns (white marks over the bar's colour).
const PATTERNS: &str = r##"<defs>
<pattern id="p-stripes" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="8" fill="#fff" fill-opacity="0.45"/></pattern>
<pattern id="p-dots" width="7" height="7" patternUnits="userSpaceOnUse"><circle cx="3.5" cy="3.5" r="1.6" fill="#fff" fill-opacity="0.6"/></pattern>
<pattern id="p-cross" width="8" height="8" patternUnits="userSpaceOnUse"><path d="M0 0L8 8M8 0L0 8" stroke="#fff" stroke-opacity="0.55" stroke-width="1.5"/></pattern>
<pattern id="p-zigzag" width="10" height="6" patternUnits="userSpaceOnUse"><path d="M0 5L2.5 1L5 5L7.5 1L10 5" fill="none" stroke="#fff" stroke-opacity="0.6" stroke-width="1.3"/></pattern>
<pattern id="p-hlines" width="6" height="5" patternUnits="userSpaceOnUse"><rect width="6" height="1.6" fill="#fff" fill-opacity="0.55"/></pattern>
<pattern id="p-vlines" width="5" height="6" patternUnits="userSpaceOnUse"><rect width="1.6" height="6" fill="#fff" fill-opacity="0.55"/></pattern>
<pattern id="p-wait" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fefcbf"/><rect width="2" height="6" fill="#b7791f" fill-opacity="0.6"/></pattern>
</defs>"##;

/// The whole page.
pub fn render(report: &BatchReport) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let title = format!("git teleos batch {}", report.session_id);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(h, "<h1>Batch {}</h1>", esc(&report.session_id));
    let mut meta = vec![
        esc(&report.mode),
        format!("agent {}", esc(&report.agent)),
        format!("started {}", esc(&report.started_at)),
    ];
    if let Some(f) = &report.finished_at {
        meta.push(format!("finished {}", esc(f)));
    }
    if let Some(b) = &report.branch {
        meta.push(format!(
            "branch {}",
            esc(b.trim_start_matches("refs/heads/"))
        ));
    }
    let _ = writeln!(h, "<p class=\"meta\">{}</p>", meta.join(" · "));
    h.push_str("<div class=\"layout\">\n<section class=\"timeline\" aria-labelledby=\"h-timeline\">\n<h2 id=\"h-timeline\">Timeline</h2>\n");
    timeline_svg(&mut h, report);
    h.push_str("</section>\n");
    summary(&mut h, report);
    h.push_str("</div>\n");
    stories_table(&mut h, report);
    lists(&mut h, report);
    h.push_str("</body>\n</html>\n");
    h
}

fn summary(h: &mut String, report: &BatchReport) {
    let t = totals(report);
    let questions = report.blocker_questions();
    let human = report.human_validation_tasks();
    let mut rows: Vec<(&str, String)> = vec![
        ("Selected", report.stories.len().to_string()),
        ("Completed", report.count(Outcome::Completed).to_string()),
        (
            "Partially blocked",
            report.count(Outcome::Partial).to_string(),
        ),
        (
            "Routed to pipeline",
            report.count(Outcome::Routed).to_string(),
        ),
        ("Errors", report.count(Outcome::Error).to_string()),
        ("Conflicts", report.count(Outcome::Conflict).to_string()),
        ("Not started", report.count(Outcome::NotStarted).to_string()),
        ("Gate failed", report.count(Outcome::GateFailed).to_string()),
        (
            "Integration failed",
            report.count(Outcome::IntegrationFailed).to_string(),
        ),
        ("Blocker questions", questions.to_string()),
        ("Human validation", human.to_string()),
        ("Agent time", human_duration(t.agent_secs)),
    ];
    if let Some(w) = t.wall_secs {
        rows.push(("Wall time", human_duration(w)));
    }
    if let Some(c) = report.total_cost() {
        rows.push(("Agent cost", format!("${c:.2}")));
    }
    rows.push((
        "Landed",
        if report.not_landed {
            "no (see the notes)"
        } else {
            "yes"
        }
        .into(),
    ));
    if let Some(why) = &report.stopped {
        rows.push(("Stopped early", why.clone()));
    }
    h.push_str("<section class=\"summary\" aria-labelledby=\"h-summary\">\n<h2 id=\"h-summary\">Summary</h2>\n<dl>\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    h.push_str("</dl>\n</section>\n");
}

const LABEL_W: f64 = 100.0;
const WIDTH: f64 = 1000.0;
const AXIS_H: f64 = 28.0;
const LANE_H: f64 = 46.0;
const BAR_H: f64 = 26.0;
const MARK_H: f64 = 8.0;
/// The details row under the lanes: three lines of text.
const TIP_H: f64 = 56.0;

/// A tick step in seconds giving at most about eight ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 8.0)
        .unwrap_or((span / 8.0 / 3600.0).ceil() * 3600.0)
}

fn timeline_svg(h: &mut String, report: &BatchReport) {
    let tl = Timeline::new(report);
    if tl.is_empty() {
        h.push_str("<p class=\"empty\">No timing in this record (it was written before git-teleos recorded when each phase ran); the tables below have what it holds.</p>\n");
        return;
    }
    let span_ms = (tl.t1 - tl.t0).max(1) as f64;
    let plot_w = WIDTH - LABEL_W - 10.0;
    let x = |t: i64| LABEL_W + (t - tl.t0) as f64 / span_ms * plot_w;
    let lanes_bottom = AXIS_H + LANE_H * tl.lanes.len() as f64 + 4.0;
    let height = lanes_bottom + TIP_H;
    let _ = writeln!(
        h,
        "<svg id=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" role=\"group\" aria-label=\"Timeline: one lane per worktree, one bar per story attempt\">"
    );
    h.push_str(PATTERNS);
    h.push('\n');
    // Time axis.
    let step = tick_step(span_ms / 1000.0);
    let mut s = 0.0;
    while s * 1000.0 <= span_ms + 1.0 {
        let tx = x(tl.t0 + (s * 1000.0) as i64);
        let _ = writeln!(
            h,
            "<line class=\"tick\" x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{lanes_bottom:.1}\"/><text x=\"{tx:.1}\" y=\"16\" text-anchor=\"middle\">{}</text>",
            AXIS_H - 6.0,
            human_duration(s)
        );
        s += step;
    }
    let mut tips: Vec<String> = Vec::new();
    for (i, lane) in tl.lanes.iter().enumerate() {
        let y = AXIS_H + LANE_H * i as f64;
        let _ = writeln!(
            h,
            "<g class=\"lane\" data-lane=\"{}\"><text class=\"lbl\" x=\"4\" y=\"{:.1}\">{}</text>",
            lane.lane
                .map_or_else(|| "checkout".to_string(), |n| n.to_string()),
            y + 8.0 + BAR_H / 2.0 + 4.0,
            esc(&lane.label())
        );
        for p in &lane.phases {
            phase_mark(h, p, x(p.start), x(p.end), y + 8.0 + BAR_H + 2.0, None);
        }
        for bar in &lane.bars {
            let tip = bar_svg(
                h,
                bar,
                (x(bar.attempt.start), x(bar.attempt.end)),
                y + 8.0,
                tips.len(),
                &x,
            );
            tips.push(tip);
        }
        h.push_str("</g>\n");
    }
    details_row(h, &tips, lanes_bottom);
    h.push_str("</svg>\n");
    legend(h);
}

fn phase_mark(h: &mut String, p: &Phase, x0: f64, x1: f64, y: f64, key: Option<&str>) {
    let w = (x1 - x0).max(1.5);
    let mut tip = format!(
        "{}{}: {}",
        key.map(|k| format!("{k} ")).unwrap_or_default(),
        p.phase,
        human_duration((p.end - p.start) as f64 / 1000.0)
    );
    if let Some(d) = &p.detail {
        tip.push_str(&format!(" ({d})"));
    }
    let _ = writeln!(
        h,
        "<rect class=\"phase\" data-phase=\"{}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{MARK_H}\" fill=\"{}\"><title>{}</title></rect>",
        esc(&p.phase),
        phase_fill(&p.phase),
        esc(&tip)
    );
}

/// Draw one attempt's bar (id `b<n>`); returns its details, one line per `\n`.
fn bar_svg(
    h: &mut String,
    bar: &Bar,
    (x0, x1): (f64, f64),
    y: f64,
    n: usize,
    x: &dyn Fn(i64) -> f64,
) -> String {
    let (label, color, pattern) = outcome_style(&bar.outcome);
    let label = if label == "other" {
        bar.outcome.as_str()
    } else {
        label
    };
    let a = bar.attempt;
    let w = (x1 - x0).max(3.0);
    let key = &bar.story.story_key;
    let mut tip = format!(
        "{key} — attempt {}: {label}, {}",
        a.attempt.max(1),
        human_duration(a.duration_ms() as f64 / 1000.0)
    );
    if let Some(c) = a.cost_usd {
        tip.push_str(&format!(", ${c:.2}"));
    }
    if !a.phases.is_empty() {
        let phases: Vec<String> = a
            .phases
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p.phase,
                    human_duration((p.end - p.start) as f64 / 1000.0)
                )
            })
            .collect();
        tip.push_str(&format!("\nphases: {}", phases.join(" · ")));
    }
    if let Some(l) = &a.log_path {
        tip.push_str(&format!("\nlog: {}", l.display()));
    }
    let _ = writeln!(
        h,
        "<g id=\"b{n}\" class=\"bar o-{}\" tabindex=\"0\" role=\"img\" aria-label=\"{}\" data-story=\"{}\" data-attempt=\"{}\" data-outcome=\"{}\" data-start=\"{}\" data-end=\"{}\"><title>{}</title>",
        esc(&bar.outcome),
        esc(&tip.replace('\n', "; ")),
        esc(key),
        a.attempt,
        esc(&bar.outcome),
        a.start,
        a.end,
        esc(&tip)
    );
    let _ = writeln!(
        h,
        "<rect class=\"box\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR_H}\" rx=\"3\" fill=\"{color}\"/>"
    );
    if !pattern.is_empty() {
        let _ = writeln!(
            h,
            "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR_H}\" rx=\"3\" fill=\"url(#{pattern})\"/>"
        );
    }
    // The key and outcome in words when they fit (about 7 units a character).
    let text = if a.attempt > 1 {
        format!("{key} (retry {}) · {label}", a.attempt - 1)
    } else {
        format!("{key} · {label}")
    };
    let fits = |t: &str| (t.chars().count() as f64) * 7.0 + 10.0 <= w;
    let mut candidates = vec![text, format!("{key} · {label}")];
    if a.attempt > 1 {
        candidates.push(format!("{key} (retry {})", a.attempt - 1));
    }
    candidates.push(key.clone());
    // Last resort: the key cut short, so no bar of a narrow lane goes unnamed.
    let room = ((w - 10.0) / 7.0).floor() as usize;
    if room >= 4 {
        candidates.push(format!(
            "{}…",
            key.chars().take(room - 1).collect::<String>()
        ));
    }
    let shown = candidates.into_iter().find(|t| fits(t));
    if let Some(t) = shown {
        let _ = writeln!(
            h,
            "<text class=\"on-bar\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x0 + 5.0,
            y + BAR_H / 2.0 + 4.0,
            esc(&t)
        );
    }
    for p in &a.phases {
        phase_mark(h, p, x(p.start), x(p.end), y + BAR_H + 2.0, Some(key));
    }
    h.push_str("</g>\n");
    tip
}

/// A row under the lanes showing the details of the bar hovered or focused (keyboard users
/// get them too, which a `<title>` tooltip alone does not give). CSS only: one generated
/// `:has()` rule per bar, no script.
fn details_row(h: &mut String, tips: &[String], y: f64) {
    let _ = writeln!(
        h,
        "<g class=\"tips\" aria-hidden=\"true\"><text class=\"tip-default\" x=\"{LABEL_W}\" y=\"{:.1}\">Hover or focus (Tab) a bar for its details.</text>",
        y + 18.0
    );
    for (n, tip) in tips.iter().enumerate() {
        let _ = write!(h, "<text id=\"t{n}\" class=\"tip\" y=\"{:.1}\">", y + 18.0);
        for (i, line) in tip.lines().enumerate() {
            let _ = write!(
                h,
                "<tspan x=\"{LABEL_W}\" dy=\"{}\"{}>{}</tspan>",
                if i == 0 { 0.0 } else { 16.0 },
                if i == 0 { " class=\"lbl\"" } else { "" },
                esc(line)
            );
        }
        h.push_str("</text>\n");
    }
    h.push_str("</g>\n<style>\n");
    for n in 0..tips.len() {
        let _ = writeln!(
            h,
            "#timeline:has(#b{n}:hover, #b{n}:focus) #t{n} {{ visibility: visible; }}"
        );
    }
    h.push_str("</style>\n");
}

fn legend(h: &mut String) {
    h.push_str("<ul class=\"legend\" aria-label=\"Legend\">\n");
    for o in LEGEND_OUTCOMES {
        let (label, color, pattern) = outcome_style(o);
        let overlay = if pattern.is_empty() {
            String::new()
        } else {
            format!("<rect width=\"22\" height=\"12\" fill=\"url(#{pattern})\"/>")
        };
        let _ = writeln!(
            h,
            "<li><svg viewBox=\"0 0 22 12\" aria-hidden=\"true\"><rect width=\"22\" height=\"12\" rx=\"2\" fill=\"{color}\"/>{overlay}</svg> {label}</li>"
        );
    }
    for p in LEGEND_PHASES {
        let _ = writeln!(
            h,
            "<li><svg viewBox=\"0 0 22 12\" aria-hidden=\"true\"><rect y=\"3\" width=\"22\" height=\"6\" fill=\"{}\"/></svg> {}</li>",
            phase_fill(p),
            p.replace('_', " ")
        );
    }
    h.push_str("</ul>\n");
}

fn short_hash(s: &StoryResult) -> String {
    s.commit_hash
        .as_deref()
        .map(|c| c.chars().take(10).collect())
        .unwrap_or_else(|| "-".into())
}

fn stories_table(h: &mut String, report: &BatchReport) {
    h.push_str("<section aria-labelledby=\"h-stories\">\n<h2 id=\"h-stories\">Stories</h2>\n<table>\n<thead><tr><th>Key</th><th>Outcome</th><th>Tasks before</th><th>Tasks after</th><th>Cost</th><th>Duration</th><th>Attempts</th><th>Commit</th><th>Log</th></tr></thead>\n<tbody>\n");
    let mut stories: Vec<&StoryResult> = report.stories.iter().collect();
    stories.sort_by(|a, b| a.story_key.cmp(&b.story_key));
    for s in stories {
        let name = timing::outcome_name(s.outcome);
        let (label, color, _) = outcome_style(&name);
        let _ = writeln!(
            h,
            "<tr data-story=\"{}\"><td><code>{}</code></td><td><span class=\"badge\" style=\"background:{color}\">{label}</span>{}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><code>{}</code></td><td class=\"path\"><code>{}</code></td></tr>",
            esc(&s.story_key),
            esc(&s.story_key),
            s.error_message
                .as_deref()
                .map(|m| format!("<br><small>{}</small>", esc(m)))
                .unwrap_or_default(),
            s.tasks_done_before,
            s.tasks_total,
            s.tasks_done,
            s.tasks_total,
            s.cost_usd.map(|c| format!("${c:.2}")).unwrap_or_else(|| "-".into()),
            human_duration(s.duration_secs),
            s.attempts,
            esc(&short_hash(s)),
            s.log_path
                .as_ref()
                .map(|p| esc(&p.display().to_string()))
                .unwrap_or_else(|| "-".into()),
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// Questions, human tasks, claims that did not hold, work kept on refs, notes.
fn lists(h: &mut String, report: &BatchReport) {
    let section = |h: &mut String, title: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(h, "<section>\n<h2>{title}</h2>\n<ul class=\"plain\">");
        for i in items {
            let _ = writeln!(h, "<li>{i}</li>");
        }
        h.push_str("</ul>\n</section>\n");
    };
    let per_story = |f: &dyn Fn(&StoryResult) -> Vec<String>| -> Vec<String> {
        report
            .stories
            .iter()
            .flat_map(|s| {
                f(s).into_iter()
                    .map(|t| format!("<code>{}</code>: {t}", esc(&s.story_key)))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    section(
        h,
        "Blocker questions",
        per_story(&|s| {
            s.blocker_questions
                .iter()
                .map(|q| format!("{} — <em>{}</em>", esc(&q.task), esc(&q.question)))
                .collect()
        }),
    );
    section(
        h,
        "Human validation",
        per_story(&|s| s.human_validation_tasks.iter().map(|t| esc(t)).collect()),
    );
    section(
        h,
        "Claims that did not hold",
        per_story(&|s| s.discrepancies.iter().map(|d| esc(d)).collect()),
    );
    section(
        h,
        "Work kept on refs",
        per_story(&|s| {
            s.rescue_ref
                .iter()
                .map(|r| format!("<code>{}</code>", esc(r)))
                .collect()
        }),
    );
    section(h, "Notes", report.notes.iter().map(|n| esc(n)).collect());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::timing::{Attempt, Lane};

    fn phase(name: &str, start: i64, end: i64) -> Phase {
        Phase {
            phase: name.into(),
            start,
            end,
            detail: None,
        }
    }

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>\u{1b}"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{FFFD}"
        );
    }

    /// Phases and outcomes added by other parts of the batch (gates, the rate governor) are
    /// drawn without this module knowing more than their names.
    #[test]
    fn gate_and_rate_limit_phases_and_new_outcomes_are_drawn() {
        let r: BatchReport = serde_json::from_str(
            r#"{"session_id":"s1","mode":"parallel (1 worktree)","agent":"claude",
            "started_at":"2026-11-30T10:00:00Z","finished_at":null,"branch":null,
            "stopped":null,"stories":[{"story_key":"4-1-<b>x</b>","path":"a.md",
            "outcome":"partial","tasks_total":2,"tasks_done":1,"tasks_done_before":1,
            "tasks_blocked":1,"unchecked_before":1,"pct_unchecked":50.0,"commit_hash":null,
            "error_message":null,"blocker_questions":[],"human_validation_tasks":[],
            "discrepancies":[],"log_path":null,"cost_usd":null,"duration_secs":4.0,
            "attempts":1,"rescue_ref":null}]}"#,
        )
        .unwrap();
        let mut r = r;
        let mut a = Attempt {
            attempt: 1,
            lane: Some(1),
            outcome: Some("gate_failed".into()),
            ..Attempt::default()
        };
        a.push(phase("agent", 1_000, 3_000));
        a.push(phase("gate", 3_000, 4_000));
        a.push(phase("something_new", 4_000, 4_500));
        r.stories[0].timeline.push(a);
        r.lanes.push(Lane {
            lane: 1,
            phases: vec![phase("rate_limit_wait", 0, 1_000)],
        });
        let html = render(&r);
        assert!(html.contains("data-outcome=\"gate_failed\""), "{html}");
        assert!(html.contains("url(#p-hlines)"));
        for p in ["gate", "rate_limit_wait", "something_new"] {
            assert!(html.contains(&format!("data-phase=\"{p}\"")), "{p}");
        }
        assert!(html.contains("4-1-&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>"));
    }
}
