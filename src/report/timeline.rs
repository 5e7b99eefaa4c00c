//! A batch's timeline as lanes of bars, shared by the HTML report and the terminal: which lane
//! ran which attempt when, and the batch's totals (wall time, agent time). Built from the batch
//! record only; records older than the timing fields give an empty timeline.

use std::io::{self, Write};

use crate::batch::results::{BatchReport, StoryResult};
use crate::batch::timing::{self, Attempt, Phase};

/// One attempt placed on a lane.
pub struct Bar<'a> {
    pub story: &'a StoryResult,
    pub attempt: &'a Attempt,
    /// Outcome name of this attempt (the story's, when the record does not say).
    pub outcome: String,
}

/// A lane: a worktree slot, or the user's checkout (`None`).
pub struct LaneView<'a> {
    pub lane: Option<u32>,
    pub bars: Vec<Bar<'a>>,
    /// The lane's own phases (worktree set-up, waiting for a dependency).
    pub phases: Vec<&'a Phase>,
}

impl LaneView<'_> {
    pub fn label(&self) -> String {
        match self.lane {
            Some(n) => format!("worktree {n}"),
            None => "checkout".to_string(),
        }
    }
}

pub struct Timeline<'a> {
    pub lanes: Vec<LaneView<'a>>,
    /// First and last instant drawn (Unix ms); equal when there is nothing to draw.
    pub t0: i64,
    pub t1: i64,
}

impl<'a> Timeline<'a> {
    pub fn new(report: &'a BatchReport) -> Self {
        let mut lanes: Vec<LaneView> = Vec::new();
        fn lane_of<'l, 'a>(
            lanes: &'l mut Vec<LaneView<'a>>,
            n: Option<u32>,
        ) -> &'l mut LaneView<'a> {
            let i = match lanes.iter().position(|l| l.lane == n) {
                Some(i) => i,
                None => {
                    lanes.push(LaneView {
                        lane: n,
                        bars: Vec::new(),
                        phases: Vec::new(),
                    });
                    lanes.len() - 1
                }
            };
            &mut lanes[i]
        }
        for l in &report.lanes {
            lane_of(&mut lanes, Some(l.lane))
                .phases
                .extend(l.phases.iter());
        }
        for s in &report.stories {
            for a in &s.timeline {
                let outcome = a
                    .outcome
                    .clone()
                    .unwrap_or_else(|| timing::outcome_name(s.outcome));
                lane_of(&mut lanes, a.lane).bars.push(Bar {
                    story: s,
                    attempt: a,
                    outcome,
                });
            }
        }
        lanes.sort_by_key(|l| l.lane.map_or(0, |n| i64::from(n) + 1));
        for l in &mut lanes {
            l.bars.sort_by_key(|b| (b.attempt.start, b.attempt.attempt));
        }
        let starts = lanes.iter().flat_map(|l| {
            l.bars
                .iter()
                .map(|b| b.attempt.start)
                .chain(l.phases.iter().map(|p| p.start))
        });
        let ends = lanes.iter().flat_map(|l| {
            l.bars
                .iter()
                .map(|b| b.attempt.end)
                .chain(l.phases.iter().map(|p| p.end))
        });
        let (t0, t1) = match (starts.min(), ends.max()) {
            (Some(a), Some(b)) => (report.started_ms.map_or(a, |s| s.min(a)), b.max(a)),
            _ => (0, 0),
        };
        Timeline { lanes, t0, t1 }
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.bars.is_empty())
    }
}

/// Totals for the summary and `history`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    /// From start to finish of the batch, when both are known.
    pub wall_secs: Option<f64>,
    /// Time agents ran: the agent phases, or the stories' durations in older records.
    pub agent_secs: f64,
}

pub fn totals(report: &BatchReport) -> Totals {
    let wall_secs = match (report.started_ms, report.finished_ms) {
        (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1000.0),
        _ => {
            let a = parse_iso8601(&report.started_at);
            let b = report.finished_at.as_deref().and_then(parse_iso8601);
            match (a, b) {
                (Some(a), Some(b)) if b >= a => Some((b - a) as f64),
                _ => None,
            }
        }
    };
    let agent_secs = report
        .stories
        .iter()
        .map(|s| {
            if s.timeline.is_empty() {
                s.duration_secs
            } else {
                s.timeline
                    .iter()
                    .flat_map(|a| &a.phases)
                    .filter(|p| p.phase == timing::AGENT || p.phase == timing::RESOLVE)
                    .map(|p| (p.end - p.start).max(0) as f64 / 1000.0)
                    .sum()
            }
        })
        .sum();
    Totals {
        wall_secs,
        agent_secs,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what the records hold) to Unix seconds; anything else is `None`.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = crate::time::days_from_civil(y, m, d);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `42s`, `3m05s`, `1h02m`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as i64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// The one-character mark of an outcome in the terminal timeline.
fn outcome_char(outcome: &str) -> char {
    match outcome {
        "completed" => '#',
        "partial" => '%',
        "blocked" => 'b',
        "error" => 'x',
        "conflict" => 'c',
        "gate_failed" => 'g',
        "ejected" => 'e',
        "routed" => '>',
        _ => '?',
    }
}

/// One line per lane: `worktree 1 |##### 1-1  xx 1-2 |`, each bar drawn with its outcome's
/// character over `width` columns, then a legend. Styled (bold labels) only when `styled`.
pub fn write_text(
    w: &mut dyn Write,
    report: &BatchReport,
    width: usize,
    styled: bool,
) -> io::Result<()> {
    let tl = Timeline::new(report);
    if tl.is_empty() {
        return Ok(());
    }
    let span = (tl.t1 - tl.t0).max(1) as f64;
    let label_w = tl.lanes.iter().map(|l| l.label().len()).max().unwrap_or(8);
    let cols = width.saturating_sub(label_w + 3).max(20);
    let col = |t: i64| (((t - tl.t0) as f64 / span) * cols as f64).floor() as usize;
    let heading = "Timeline";
    writeln!(w)?;
    if styled {
        writeln!(w, "{}", console::style(heading).bold())?;
    } else {
        writeln!(w, "{heading}")?;
    }
    for lane in &tl.lanes {
        let mut line: Vec<char> = vec![' '; cols];
        for p in &lane.phases {
            let (a, b) = (col(p.start).min(cols - 1), col(p.end).min(cols));
            for c in line.iter_mut().take(b.max(a + 1)).skip(a) {
                *c = if p.phase == timing::SETUP { '.' } else { '~' };
            }
        }
        for bar in &lane.bars {
            let (a, b) = (
                col(bar.attempt.start).min(cols - 1),
                col(bar.attempt.end).min(cols),
            );
            let b = b.max(a + 1);
            let mark = outcome_char(&bar.outcome);
            for c in line.iter_mut().take(b).skip(a) {
                *c = mark;
            }
            // The key inside the bar when it fits, after the first mark.
            let key: Vec<char> = bar
                .story
                .story_key
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            if b - a > key.len() + 2 {
                line[a + 1..a + 1 + key.len()].copy_from_slice(&key);
            }
        }
        let text: String = line.into_iter().collect();
        writeln!(
            w,
            "  {:<label_w$} |{}|",
            lane.label(),
            text.trim_end_matches(' ')
        )?;
    }
    writeln!(
        w,
        "  {:<label_w$}  0{:>width$}",
        "",
        human_duration(span / 1000.0),
        width = cols.saturating_sub(1)
    )?;
    writeln!(
        w,
        "  # completed  % partial  x error  c conflict  g gate failed  e ejected  . setup  ~ waiting"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_round_trips() {
        for t in [0, 951_825_845, 1_764_000_000, 1_767_225_600] {
            assert_eq!(parse_iso8601(&crate::time::iso8601(t)), Some(t));
        }
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(4.4), "4s");
        assert_eq!(human_duration(125.0), "2m05s");
        assert_eq!(human_duration(3720.0), "1h02m");
    }
}
