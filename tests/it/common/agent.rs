//! One builder for the stand-in `claude` the tests put on PATH.
//!
//! The script speaks Claude Code's protocol as the real CLI does (captures in
//! `tests/it/common/fixtures/agent-cli/`): `claude auth status` prints the auth JSON (the real
//! not-logged-in capture, exit 1, when logged out), the prompt comes on stdin, and the answer is
//! the real result envelope (`claude.out` with `type`, `subtype`, `is_error`, `result`,
//! `total_cost_usd`, …). What the agent does in between is composed from steps, run in order in
//! the checkout the agent was started in. In the steps, `$key` and `$file` are the story's key
//! and file (read from the prompt), `$prompt` the prompt, `$home` the test's scratch folder and
//! `$state` its `agents/` folder; after [`Claude::tick`], `$total`, `$already` and `$done_now`
//! count the story's tasks.
//!
//! Two shell functions answer: `answer TOTAL BY_CLOSER ALREADY [EXTRA_FIELDS]` prints a
//! completed worker result with those counts, `answer_status` one with only the key and status.

use std::path::PathBuf;

use super::{claude_envelope_sh, fixture, heredoc, TestRepo, STORY_FROM_PROMPT};

/// Shell printing claude's real envelope (`claude.out`) for a run that failed: `subtype`,
/// `is_error: true`, `result` and `total_cost_usd` set.
pub fn error_envelope_sh(subtype: &str, result: &str, cost: f64) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&fixture("claude.out")).expect("claude.out is JSON");
    v["subtype"] = subtype.into();
    v["is_error"] = true.into();
    v["result"] = result.into();
    v["total_cost_usd"] = cost.into();
    heredoc(&v.to_string(), false)
}

/// A stand-in `claude`, built step by step, then [`Claude::install`]ed.
pub struct Claude {
    logged_in: bool,
    cost: f64,
    steps: Vec<String>,
}

impl Default for Claude {
    fn default() -> Self {
        Claude::new()
    }
}

impl Claude {
    /// Logged in, no steps, cost 0.
    pub fn new() -> Claude {
        Claude {
            logged_in: true,
            cost: 0.0,
            steps: Vec::new(),
        }
    }

    /// `claude auth status` answers as the real CLI does when nobody logged in (exit 1).
    pub fn logged_out(mut self) -> Claude {
        self.logged_in = false;
        self
    }

    /// The `total_cost_usd` every answer carries.
    pub fn cost(mut self, cost: f64) -> Claude {
        self.cost = cost;
        self
    }

    /// Any shell lines, as they are.
    pub fn sh(mut self, lines: &str) -> Claude {
        self.steps.push(lines.trim_end().to_string());
        self
    }

    /// Shell lines run only for stories whose key matches the shell pattern `glob`.
    pub fn on(self, glob: &str, lines: &str) -> Claude {
        // `;;` on its own line: a comment on the last line must not swallow it.
        self.sh(&format!(
            "case \"$key\" in {glob})\n{}\n;;\nesac",
            lines.trim_end()
        ))
    }

    /// Sleep (`seconds` is shell: a number or an expansion).
    pub fn sleep(self, seconds: &str) -> Claude {
        self.sh(&format!("sleep {seconds}"))
    }

    /// Count the story's tasks into `$total` and `$already`, tick every open box, and set
    /// `$done_now` to how many it ticked.
    pub fn tick(self) -> Claude {
        self.sh(r#"already=$(grep -c '^- \[x\]' "$file")
total=$(grep -c '^- \[' "$file")
sed -i 's/^- \[ \] /- [x] /' "$file"
done_now=$((total - already))"#)
    }

    /// Write `out/<key>.txt` holding the key.
    pub fn write_out(self) -> Claude {
        self.sh(r#"mkdir -p out && echo "$key" > "out/$key.txt""#)
    }

    /// `git add <paths>` (shell words) and commit as "teleos: close <key>".
    pub fn commit(self, paths: &str) -> Claude {
        self.sh(&format!(
            r#"git add {paths} && git commit -qm "teleos: close $key""#
        ))
    }

    /// Leave an uncommitted file `path` behind, for stories matching `glob`.
    pub fn leftover(self, glob: &str, path: &str, text: &str) -> Claude {
        self.on(glob, &format!("echo \"{text}\" > \"{path}\""))
    }

    /// Switch the checkout to a new branch `rogue-<key>`, for stories matching `glob`.
    pub fn switch_branch(self, glob: &str) -> Claude {
        self.on(glob, r#"git checkout -q -b "rogue-$key""#)
    }

    /// Append the key to `$state/<name>` (every call, across sessions).
    pub fn record(self, name: &str) -> Claude {
        self.sh(&format!(r#"echo "$key" >> "$state/{name}""#))
    }

    /// For stories matching `glob`: fail as claude does on an error, printing the real
    /// envelope (`claude.out`) with `subtype`, `is_error: true` and `result` set, and exit 1.
    pub fn fail(self, glob: &str, subtype: &str, result: &str) -> Claude {
        let envelope = error_envelope_sh(subtype, result, 0.0);
        self.on(glob, &format!("{envelope}exit 1"))
    }

    /// Record every call under `$home/calls/`: `<n>.prompt` (stdin), `<n>.env` (the
    /// environment) and `<n>.args` (the arguments), `n` counting from 0.
    pub fn record_calls(self) -> Claude {
        self.sh(r#"mkdir -p "$home/calls"
n=$(ls "$home/calls" | wc -l)
printf '%s' "$prompt" > "$home/calls/$n.prompt"
env > "$home/calls/$n.env"
printf '%s\n' "$*" > "$home/calls/$n.args""#)
    }

    /// For stories matching `glob`: run `actions`, print `stdout` verbatim, exit with `code`.
    pub fn reply(self, glob: &str, actions: &str, stdout: &str, code: i32) -> Claude {
        let out = heredoc(stdout, false);
        self.on(glob, &format!("{actions}\n{out}exit {code}"))
    }

    /// End with a completed worker result carrying the counts [`Claude::tick`] made.
    pub fn answer_counts(self) -> Claude {
        self.sh(r#"answer "$total" "$done_now" "$already""#)
    }

    /// The script.
    pub fn script(&self, r: &TestRepo) -> String {
        let auth = if self.logged_in {
            // The fields `claude auth status` prints, logged in with a claude.ai account.
            "  echo '{\"loggedIn\": true, \"authMethod\": \"claude.ai\", \"apiProvider\": \"firstParty\"}'\n  exit 0\n"
                .to_string()
        } else {
            heredoc(&fixture("claude-auth.out"), false) + "  exit 1\n"
        };
        let answer = claude_envelope_sh(
            r#"printf '{"story_key":"%s","status":"completed","tasks_total":%s,"tasks_completed_by_closer":%s,"tasks_already_done":%s%s}' "$key" "$1" "$2" "$3" "${4:+,$4}""#,
            self.cost,
        );
        let answer_status = claude_envelope_sh(
            r#"printf '{"story_key":"%s","status":"completed"}' "$key""#,
            self.cost,
        );
        format!(
            r#"#!/bin/sh
# Stand-in for Claude Code (claude -p --output-format json): prompt on stdin, envelope on stdout.
if [ "$1" = auth ]; then
{auth}fi
prompt=$(cat)
{STORY_FROM_PROMPT}
home="{home}"
state="{state}"
answer() {{
{answer}}}
answer_status() {{
{answer_status}}}
{steps}
"#,
            home = r.home.display(),
            state = self.state(r).display(),
            steps = self.steps.join("\n"),
        )
    }

    /// The folder `$state` names (`<home>/agents`).
    pub fn state(&self, r: &TestRepo) -> PathBuf {
        r.home.join("agents")
    }

    /// Put the script on the binary's PATH as `claude`; create `$state`; return it.
    pub fn install(&self, r: &TestRepo) -> PathBuf {
        let state = self.state(r);
        std::fs::create_dir_all(&state).expect("mkdir agents state");
        r.install_script("claude", &self.script(r));
        state
    }
}
