//! Running one gate: in a given checkout, with a timeout that kills its whole process group,
//! its output kept in a log and the end of it kept for the report and the repair prompt.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Gate;

/// Lines, then characters, of a red gate's output carried in reports and repair prompts.
pub const TAIL_LINES: usize = 60;
pub const TAIL_CHARS: usize = 6000;

/// What one gate run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateResult {
    pub command: String,
    /// `None` when it was killed (timeout) or could not start.
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
                .unwrap_or("did not run")
                .to_string(),
        }
    }
}

/// Run `gate` in `cwd`; the whole output goes to `log_path`. Never fails: a gate that cannot
/// start is a red gate, with the reason as its output.
pub fn run_gate(gate: &Gate, cwd: &Path, log_path: &Path, timeout: Duration) -> GateResult {
    let started = Instant::now();
    let program = PathBuf::from(&gate.argv[0]);
    let args: Vec<&str> = gate.argv[1..].iter().map(String::as_str).collect();
    let run = crate::agent::run::run_captured_in(&program, &args, Some(cwd), timeout);
    let duration = started.elapsed();
    let (exit_code, timed_out, output) = match run {
        Ok(Some(c)) => {
            let mut text = c.stdout;
            if !c.stderr.is_empty() {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&c.stderr);
            }
            (c.exit_code, false, text)
        }
        Ok(None) => (
            None,
            true,
            format!(
                "[git-teleos] killed after {}s (teleos.gateTimeout)\n",
                timeout.as_secs()
            ),
        ),
        Err(e) => (None, false, format!("[git-teleos] could not start: {e}\n")),
    };
    let passed = exit_code == Some(0);
    write_log(log_path, gate, cwd, &output, exit_code, duration);
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

fn write_log(
    path: &Path,
    gate: &Gate,
    cwd: &Path,
    output: &str,
    code: Option<i32>,
    took: Duration,
) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::File::create(path) {
        let _ = write!(
            f,
            "=== gate: {} ({}) in {} ===\n{output}\n=== end: {} after {:.1}s ===\n",
            gate.command,
            gate.why,
            cwd.display(),
            code.map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "no exit code".into()),
            took.as_secs_f64()
        );
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
        // `$HOME` and `;` reach sh as plain text: the command line is split, never interpreted.
        let green = Gate::new("sh -c 'echo \"$0\" ok' '$HOME;x'", "test").expect("gate");
        let r = run_gate(
            &green,
            dir.path(),
            &logs.join("g.log"),
            Duration::from_secs(20),
        );
        assert!(r.passed, "{r:?}");
        let log = std::fs::read_to_string(logs.join("g.log")).expect("log");
        assert!(log.contains("$HOME;x ok"), "{log}");
        let red = Gate::new("sh -c 'pwd; echo broken >&2; exit 3'", "test").expect("gate");
        let r = run_gate(
            &red,
            dir.path(),
            &logs.join("r.log"),
            Duration::from_secs(20),
        );
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
            Duration::from_secs(20),
        );
        assert!(!r.passed);
        assert!(
            r.status_text().contains("could not start"),
            "{}",
            r.status_text()
        );
    }
}
