//! Running one gate: in a given checkout, through the process module (no shell, `GIT_*`
//! pinning variables removed, its own process group stopped whole at the timeout or on
//! Ctrl-C), its whole output in a log and the end of it kept for the report and the repair
//! prompt.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Gate;
use crate::process::{Cmd, Stop};

/// Lines, then characters, of a red gate's output carried in reports and repair prompts.
pub const TAIL_LINES: usize = 60;
pub const TAIL_CHARS: usize = 6000;
/// A gate's log stops growing here (a note marks the cut); the tail is kept in memory anyway.
const LOG_CAP: u64 = 64 << 20;
/// How much of the end of the output is kept in memory (the tail is cut from it).
const CAPTURE: usize = 64 << 10;

/// What one gate run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateResult {
    pub command: String,
    /// `None` when it was killed (timeout, Ctrl-C) or could not start.
    pub exit_code: Option<i32>,
    pub passed: bool,
    #[serde(default)]
    pub timed_out: bool,
    pub duration_secs: f64,
    pub log_path: PathBuf,
    /// The end of its output (bounded), when it was red.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_tail: String,
}

impl GateResult {
    /// `exit code 1`, `timed out after 1800s`, `could not start: …`.
    pub fn status_text(&self) -> String {
        match (self.exit_code, self.timed_out) {
            (_, true) => format!("timed out after {:.0}s", self.duration_secs),
            (Some(c), _) => format!("exit code {c}"),
            (None, _) => self
                .output_tail
                .lines()
                .last()
                .map(|l| l.trim_start_matches("[git-teleos] ").to_string())
                .unwrap_or_else(|| "did not run".to_string()),
        }
    }
}

/// Run `gate` in `cwd`; its whole output goes to `log_path`. Never fails: a gate that cannot
/// start is a red gate, with the reason as its output. `on_spawn` is told its process group.
pub fn run_gate(
    gate: &Gate,
    cwd: &Path,
    log_path: &Path,
    timeout: Duration,
    cancel: &AtomicBool,
    on_spawn: Option<&(dyn Fn(i32) + Sync)>,
) -> GateResult {
    let started = Instant::now();
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let log = File::create(log_path).and_then(|mut f| {
        writeln!(
            f,
            "=== gate: {} ({}) in {} ===",
            gate.command,
            gate.why,
            cwd.display()
        )?;
        Ok(f)
    });
    let mut cmd = Cmd::new(&gate.argv[0])
        .args(&gate.argv[1..])
        .current_dir(cwd)
        .timeout(timeout)
        .cancel(cancel)
        .capture(CAPTURE, CAPTURE)
        // One text in the order it was printed: a test runner's failures, then its summary.
        .merge_stderr();
    if let Some(f) = on_spawn {
        cmd = cmd.on_spawn(f);
    }
    if let Ok(f) = log {
        cmd = cmd.log(f, LOG_CAP);
    }
    let (exit_code, passed, timed_out, note, captured) = match cmd.run() {
        Ok(out) => {
            let note = match out.stopped {
                Some(Stop::Timeout) => Some(format!(
                    "[git-teleos] stopped after {}s (teleos.gateTimeout)",
                    timeout.as_secs()
                )),
                Some(Stop::Cancel) => Some("[git-teleos] stopped: interrupted".to_string()),
                Some(Stop::Stall) => Some("[git-teleos] stopped: no output".to_string()),
                None => out
                    .signal()
                    .map(|s| format!("[git-teleos] killed by signal {s}")),
            };
            let text = out.stdout_text();
            (
                if out.stopped.is_some() {
                    None
                } else {
                    out.code()
                },
                out.success(),
                out.stopped == Some(Stop::Timeout),
                note,
                text,
            )
        }
        Err(e) => (
            None,
            false,
            false,
            Some(format!("[git-teleos] could not start: {e}")),
            String::new(),
        ),
    };
    let duration = started.elapsed();
    let footer = format!(
        "{}=== end: {} after {:.1}s ===\n",
        note.as_deref()
            .map(|n| format!("{n}\n"))
            .unwrap_or_default(),
        exit_code
            .map(|c| format!("exit code {c}"))
            .unwrap_or_else(|| "no exit code".into()),
        duration.as_secs_f64()
    );
    if let Ok(mut f) = OpenOptions::new().append(true).open(log_path) {
        let _ = write!(f, "\n{footer}");
    }
    let mut output = captured;
    if let Some(n) = &note {
        output.push('\n');
        output.push_str(n);
    }
    GateResult {
        command: gate.command.clone(),
        exit_code,
        passed,
        timed_out,
        duration_secs: duration.as_secs_f64(),
        log_path: log_path.to_path_buf(),
        output_tail: if passed { String::new() } else { tail(&output) },
    }
}

/// The last [`TAIL_LINES`] lines, at most [`TAIL_CHARS`] characters (cut at a line start).
pub fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let mut kept = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if kept.len() > TAIL_CHARS {
        let mut cut = kept.len() - TAIL_CHARS;
        while !kept.is_char_boundary(cut) {
            cut += 1;
        }
        kept = kept[cut..].to_string();
        if let Some(nl) = kept.find('\n') {
            kept = kept[nl + 1..].to_string();
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_bounded_in_lines_and_characters() {
        let many: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let t = tail(&many);
        assert_eq!(t.lines().count(), TAIL_LINES);
        assert!(t.ends_with("line 499"));
        let wide: String = (0..50)
            .map(|i| format!("{i} {}\n", "é".repeat(200)))
            .collect();
        let t = tail(&wide);
        assert!(t.len() <= TAIL_CHARS);
        assert!(
            t.starts_with(|c: char| c.is_ascii_digit()),
            "cut at a line start"
        );
        assert!(t.ends_with(&"é".repeat(200)));
    }

    #[test]
    fn a_gate_runs_without_a_shell_and_reports_red_and_green() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("logs");
        let no = AtomicBool::new(false);
        let secs = Duration::from_secs;
        // `$HOME` and `;` reach sh as plain text: the command line is split, never interpreted.
        let green = Gate::new("sh -c 'echo \"$0\" ok' '$HOME;x'", "test").expect("gate");
        let r = run_gate(&green, dir.path(), &logs.join("g.log"), secs(20), &no, None);
        assert!(r.passed, "{r:?}");
        let log = std::fs::read_to_string(logs.join("g.log")).expect("log");
        assert!(log.contains("$HOME;x ok"), "{log}");
        let red = Gate::new("sh -c 'pwd; echo broken >&2; exit 3'", "test").expect("gate");
        let r = run_gate(&red, dir.path(), &logs.join("r.log"), secs(20), &no, None);
        assert!(!r.passed);
        assert_eq!(r.exit_code, Some(3));
        assert!(r.output_tail.contains("broken"), "{r:?}");
        let cwd = dir.path().canonicalize().expect("canonical");
        assert!(r.output_tail.contains(&*cwd.to_string_lossy()), "{r:?}");
        let missing = Gate::new("no-such-gate-program-xyz", "test").expect("gate");
        let r = run_gate(
            &missing,
            dir.path(),
            &logs.join("m.log"),
            secs(20),
            &no,
            None,
        );
        assert!(!r.passed);
        assert!(
            r.status_text().contains("could not start"),
            "{}",
            r.status_text()
        );
    }

    #[test]
    fn a_hanging_gate_is_stopped_at_its_timeout_and_is_red() {
        let dir = tempfile::tempdir().expect("tempdir");
        let no = AtomicBool::new(false);
        let g = Gate::new("sh -c 'echo started; sleep 30 & wait'", "test").expect("gate");
        let log = dir.path().join("t.log");
        let r = run_gate(&g, dir.path(), &log, Duration::from_secs(1), &no, None);
        assert!(!r.passed && r.timed_out, "{r:?}");
        assert!(
            r.status_text().starts_with("timed out"),
            "{}",
            r.status_text()
        );
        assert!(r.output_tail.contains("started"), "{r:?}");
        assert!(r.output_tail.contains("teleos.gateTimeout"), "{r:?}");
    }

    #[test]
    fn a_cancelled_gate_is_red() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = AtomicBool::new(true);
        let g = Gate::new("sh -c 'sleep 30'", "test").expect("gate");
        let r = run_gate(
            &g,
            dir.path(),
            &dir.path().join("c.log"),
            Duration::from_secs(60),
            &cancel,
            None,
        );
        assert!(!r.passed && !r.timed_out, "{r:?}");
        assert!(
            r.status_text().contains("interrupted"),
            "{}",
            r.status_text()
        );
    }
}
