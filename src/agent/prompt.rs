//! The prompt an agent gets for one story: the facts of the story, the worker instructions
//! (built in, or the repository's own), earlier answers, and the result it must end with.

use std::path::Path;

use crate::stories::tracker::TrackerMode;

/// What the prompt is built from.
#[derive(Debug, Clone)]
pub struct PromptInput<'a> {
    pub story_key: &'a str,
    /// As the agent should open it: relative to its working directory.
    pub story_file: &'a Path,
    pub sprint_artifacts: &'a Path,
    pub unchecked_count: usize,
    /// Today, `YYYY-MM-DD`.
    pub date: String,
    /// Task texts matching these are for a human to validate; the agent must not do them.
    pub human_patterns: &'a [String],
    /// The repository's own instructions (`teleos.workerInstructions`), replacing the built-in ones.
    pub instructions: Option<String>,
    /// Answers to blocker questions of an earlier run: (task, question, answer).
    pub answers: Vec<(String, String, String)>,
    /// Running in a worktree of its own (parallel mode) rather than the user's checkout.
    pub worktree_mode: bool,
    pub branch: Option<String>,
    /// Who writes the sprint tracker in this batch, and the file (relative, as the agent opens it).
    pub tracker: TrackerMode,
    pub tracker_file: &'a Path,
}

/// The built-in worker instructions. `{story_key}`, `{story_file}`, `{sprint_artifacts}`,
/// `{unchecked_count}`, `{date}` and `{tracker_step}` (what to do about `sprint-status.yaml` in
/// this batch) are filled in (also in a repository's own file).
pub const DEFAULT_INSTRUCTIONS: &str = r#"## Your job

You are closing story `{story_key}`: it is nearly finished and {unchecked_count} of its tasks are
still unchecked. Work autonomously; nobody will answer questions during this run.

1. Read `{story_file}` and the code it concerns. List its unchecked (`- [ ]`) tasks. A story
   without checkboxes writes its tasks as headings (`### Task 1: …` under its tasks section):
   there a task is open until its heading carries ✅ (or `[x]`, `DONE`).
2. Sort them. A task whose text matches one of the human-validation patterns above is for a
   person to check: never do it and never tick it; list it under `human_validation_tasks`.
   Every other unchecked task is automatable.
3. Do the automatable tasks, one by one, in the code base. When a task cannot be done without
   a decision or information you do not have, do not guess: leave it unchecked, note it as a
   blocker (the task and the precise question a person must answer) and go on with the others.
4. Run the project's tests and linters (the ones the repository already uses). Fix what your
   changes broke.
5. Review your own changes as a strict reviewer would. Classify findings as must-fix (bugs,
   broken tests, security, missing requirement) or should-fix (style, naming, small cleanups).
   Fix every must-fix finding and review again; up to three review iterations.
6. Tick a task's box (`- [x]`) only when there is evidence it is done: code present, tests
   passing. For a heading task, end its heading with ` ✅` instead (replacing an open mark such
   as `[ ]` or `[~]`). Do not tick boxes you did not verify. Do not reword or remove tasks.
7. {tracker_step}
8. Write `{sprint_artifacts}/completions/{story_key}-summary.md` (create the folder if needed):
   what was done, tests run and their result, review findings, blockers, human-validation tasks.
9. Make exactly one git commit for the story containing all your changes, with the message
   `teleos: close {story_key}`. Do not switch branches, do not rebase, do not push, do not
   touch other stories' files.
10. Never ask the user questions; record blockers instead and finish.
"#;

/// The status rule, stated once for every tracker mode (`stories::tracker::status_for`).
const STATUS_RULE: &str = "from the final ratio of checked to total tasks in the story file: \
`done` if at least 0.95 are checked and nothing is blocked; `review` if at least 0.80 are \
checked; otherwise `in-progress`";

/// Step 7 of the instructions: who updates `sprint-status.yaml`.
fn tracker_step(input: &PromptInput) -> String {
    let file = input.tracker_file.display();
    let key = input.story_key;
    match input.tracker {
        TrackerMode::Agent => format!(
            "Update `{file}`: set the status of `{key}` {STATUS_RULE}.\n   Change no other entry."
        ),
        TrackerMode::Teleos => format!(
            "Do not edit `{file}`: git-teleos is its only writer in this batch and sets the \
             status of `{key}` itself when it merges your work, {STATUS_RULE}. Any change you \
             make to that file is dropped. Report that status as `sprint_status` in your result."
        ),
        TrackerMode::Off => format!(
            "Do not edit `{file}`: it is left as it is in this batch. Report the status `{key}` \
             would have, {STATUS_RULE}, as `sprint_status` in your result."
        ),
    }
}

/// Always appended, also after a repository's own instructions: the batch reads this result.
const RESULT_CONTRACT: &str = r#"## Your final answer

End your answer with exactly one fenced `json` block and nothing after it. It holds the
worker result; counts are numbers, `status` is `completed` (every automatable task done),
`partial` (some left or blocked) or `error` (you could not work on the story):

```json
{
  "story_key": "{story_key}",
  "status": "partial",
  "tasks_total": 12,
  "tasks_completed_by_closer": 3,
  "tasks_already_done": 7,
  "tasks_blocked": 1,
  "tasks_human_validation": 1,
  "blocker_questions": [
    {"task": "Configure the production SMTP relay", "question": "Which SMTP host and port should production use?"}
  ],
  "human_validation_tasks": ["Manually verify the email renders in Outlook"],
  "review_summary": {"must_fix_found": 2, "must_fix_resolved": 2, "should_fix": 1, "iterations": 2},
  "sprint_status": "review",
  "commit_hash": "<the full hash of your commit, or null if you made none>",
  "errors": []
}
```
"#;

/// The full prompt for one story.
pub fn build_prompt(input: &PromptInput) -> String {
    let mut p = String::new();
    p.push_str(&format!(
        "# git-teleos worker: story {}\n\n## The story\n\n",
        input.story_key
    ));
    p.push_str(&format!("- story_key: `{}`\n", input.story_key));
    p.push_str(&format!("- story_file: `{}`\n", input.story_file.display()));
    p.push_str(&format!(
        "- sprint_artifacts: `{}`\n",
        input.sprint_artifacts.display()
    ));
    p.push_str(&format!("- unchecked_count: {}\n", input.unchecked_count));
    p.push_str(&format!("- current_date: {}\n", input.date));
    let place = if input.worktree_mode {
        "a git worktree of its own, created for this story"
    } else {
        "the user's checkout"
    };
    p.push_str(&format!("- Working directory: {place}\n"));
    if let Some(branch) = &input.branch {
        p.push_str(&format!("- Branch: `{branch}` (stay on it)\n"));
    }
    p.push_str("\n## Human-validation patterns\n\n");
    if input.human_patterns.is_empty() {
        p.push_str("(none configured)\n");
    } else {
        p.push_str("Tasks whose text matches any of these (case-insensitive) are for a human:\n\n");
        for pattern in input.human_patterns {
            p.push_str(&format!("- `{pattern}`\n"));
        }
    }
    if !input.answers.is_empty() {
        p.push_str(
            "\n## Answers to earlier blocker questions\n\n\
             A previous run stopped on these questions; a person answered them. Use the answers.\n\n",
        );
        for (task, question, answer) in &input.answers {
            p.push_str(&format!(
                "- Task: {task}\n  Question: {question}\n  Answer: {answer}\n"
            ));
        }
    }
    p.push('\n');
    let instructions = input
        .instructions
        .as_deref()
        .unwrap_or(DEFAULT_INSTRUCTIONS);
    p.push_str(&fill(instructions, input));
    if !p.ends_with('\n') {
        p.push('\n');
    }
    p.push('\n');
    p.push_str(&fill(RESULT_CONTRACT, input));
    p
}

fn fill(template: &str, input: &PromptInput) -> String {
    template
        // First: the step itself holds placeholders filled below.
        .replace("{tracker_step}", &tracker_step(input))
        .replace("{story_key}", input.story_key)
        .replace("{story_file}", &input.story_file.display().to_string())
        .replace(
            "{sprint_artifacts}",
            &input.sprint_artifacts.display().to_string(),
        )
        .replace("{unchecked_count}", &input.unchecked_count.to_string())
        .replace("{date}", &input.date)
}

/// The prompt for `--resolve`: the story's work conflicts with what merged meanwhile; the agent
/// merges the integration branch into its own branch and resolves the conflicts.
pub fn build_resolve_prompt(
    story_key: &str,
    branch: &str,
    integration: &str,
    paths: &[String],
) -> String {
    let files: String = paths.iter().map(|p| format!("- `{p}`\n")).collect();
    format!(
        "# git-teleos worker: resolve a merge conflict for story {story_key}\n\n\
         - story_key: `{story_key}`\n\
         - branch: `{branch}` (stay on it)\n\
         - integration branch: `{integration}`\n\n\
         Your commits for this story conflict with work of other stories merged meanwhile, in:\n\n\
         {files}\n\
         Resolve the merge conflict:\n\n\
         1. Run `git merge --no-edit {integration}` in this worktree.\n\
         2. Resolve every conflict so that both the other stories' work and this story's work are \
            kept; leave no conflict markers.\n\
         3. Run the project's tests.\n\
         4. Commit the merge (`git commit --no-edit`). Do not switch branches, rebase or push.\n\n\
         End your answer with a fenced `json` block: \
         {{\"story_key\": \"{story_key}\", \"status\": \"completed\"}} when the merge is committed, \
         or status `error` with `errors` explaining why not.\n"
    )
}

/// A repair round: the project's check `command` is red on the story's commits; `output` is
/// the (already bounded) end of what it printed.
pub fn build_repair_prompt(
    story_key: &str,
    story_file: &Path,
    branch: Option<&str>,
    command: &str,
    status: &str,
    output: &str,
) -> String {
    let branch_line = branch
        .map(|b| format!("- branch: `{b}` (stay on it)\n"))
        .unwrap_or_default();
    format!(
        "# git-teleos worker: repair story {story_key}: the project's check is red\n\n\
         - story_key: `{story_key}`\n\
         - story_file: `{}`\n\
         {branch_line}\
         - failing check: `{command}` ({status})\n\n\
         Your commits for this story were checked with `{command}`, run at the repository root, \
         and it failed. The last lines of its output:\n\n\
         ```text\n{}\n```\n\n\
         Fix the cause in the code (do not weaken or skip the check), run `{command}` until it \
         passes, and commit the fix. Do not switch branches, rebase or push.\n\n\
         End your answer with a fenced `json` block: \
         {{\"story_key\": \"{story_key}\", \"status\": \"completed\"}} when the fix is committed, \
         or status `error` with `errors` explaining why not.\n",
        story_file.display(),
        // The output must not close the fence it is shown in.
        output.replace("```", "'''"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::result::extract_result;

    fn input(patterns: &[String]) -> PromptInput<'_> {
        PromptInput {
            story_key: "2-3-checkout",
            story_file: Path::new("docs/sprint-artifacts/2-3-checkout.md"),
            sprint_artifacts: Path::new("docs/sprint-artifacts"),
            unchecked_count: 4,
            date: "2026-05-01".into(),
            human_patterns: patterns,
            instructions: None,
            answers: Vec::new(),
            worktree_mode: true,
            branch: Some("teleos/2-3-checkout".into()),
            tracker: TrackerMode::Teleos,
            tracker_file: Path::new("docs/sprint-artifacts/sprint-status.yaml"),
        }
    }

    #[test]
    fn the_tracker_step_follows_the_mode() {
        let mut i = input(&[]);
        i.tracker_file = Path::new("_bmad-output/sprint-status.yaml");
        let parallel = build_prompt(&i);
        assert!(parallel.contains(
            "Do not edit `_bmad-output/sprint-status.yaml`: git-teleos is its only writer"
        ));
        assert!(parallel.contains("sets the status of `2-3-checkout` itself when it merges"));
        assert!(!parallel.contains("Update `"), "{parallel}");
        i.tracker = TrackerMode::Agent;
        let sequential = build_prompt(&i);
        assert!(sequential.contains(
            "Update `_bmad-output/sprint-status.yaml`: set the status of `2-3-checkout` from the final ratio"
        ));
        assert!(
            sequential.contains("at least 0.95") && sequential.contains("Change no other entry")
        );
        i.tracker = TrackerMode::Off;
        let off = build_prompt(&i);
        assert!(off.contains("Do not edit `_bmad-output/sprint-status.yaml`: it is left as it is"));
        assert!(!off.contains("{tracker_step}") && !off.contains("{story_key}"));
    }

    #[test]
    fn default_prompt_carries_the_facts_and_the_rules() {
        let patterns = vec!["manual".to_string(), "verify in browser".to_string()];
        let p = build_prompt(&input(&patterns));
        for needle in [
            "story_key: `2-3-checkout`",
            "story_file: `docs/sprint-artifacts/2-3-checkout.md`",
            "sprint_artifacts: `docs/sprint-artifacts`",
            "unchecked_count: 4",
            "2026-05-01",
            "- `verify in browser`",
            "Branch: `teleos/2-3-checkout`",
            "docs/sprint-artifacts/sprint-status.yaml",
            "docs/sprint-artifacts/completions/2-3-checkout-summary.md",
            "teleos: close 2-3-checkout",
            "at least 0.95",
            "at least 0.80",
            "do not push",
            "\"story_key\": \"2-3-checkout\"",
        ] {
            assert!(p.contains(needle), "missing {needle:?}");
        }
        assert!(!p.contains("{story_key}") && !p.contains("{sprint_artifacts}"));
        assert!(!p.contains("earlier blocker questions"));
    }

    #[test]
    fn the_example_block_is_a_valid_result() {
        let p = build_prompt(&input(&[]));
        let r = extract_result(&p).expect("the example must parse");
        assert_eq!(r.story_key, "2-3-checkout");
        assert_eq!(r.blocker_questions.len(), 1);
    }

    #[test]
    fn answers_and_own_instructions() {
        let mut i = input(&[]);
        i.answers = vec![(
            "Set SMTP".into(),
            "Which host?".into(),
            "smtp.example.org:587".into(),
        )];
        i.instructions = Some("Our rules for {story_key}: use make test.".into());
        i.worktree_mode = false;
        i.branch = None;
        let p = build_prompt(&i);
        assert!(p.contains("Answer: smtp.example.org:587") && p.contains("Question: Which host?"));
        assert!(p.contains("Our rules for 2-3-checkout: use make test."));
        assert!(
            !p.contains("## Your job"),
            "own instructions replace the built-in ones"
        );
        assert!(
            p.contains("## Your final answer"),
            "the result contract is always there"
        );
        assert!(p.contains("the user's checkout") && !p.contains("Branch:"));
    }

    #[test]
    fn repair_prompt_names_the_check_and_carries_its_output_in_one_fence() {
        let p = build_repair_prompt(
            "2-3-checkout",
            Path::new("docs/sprint-artifacts/2-3-checkout.md"),
            Some("worktree/teleos-abc123-1"),
            "npm test",
            "exit code 1",
            "FAIL src/cart.test.ts\n```\nexpected 3, got 2",
        );
        assert!(p.contains("story_key: `2-3-checkout`"));
        assert!(p.contains("`npm test` (exit code 1)"));
        assert!(p.contains("expected 3, got 2"));
        assert!(p.contains("branch: `worktree/teleos-abc123-1`"));
        // The output cannot close the fence it is shown in.
        assert_eq!(p.matches("```").count(), 2, "{p}");
    }
}
