//! The order a parallel batch starts its ready stories in (`teleos.schedule`, README, "Parallel
//! mode"). Pure: no git, no files.
//!
//! A batch ends when its last agent does, so the slot that gets a long story last decides when
//! everything lands. Starting the longest work first (the classic longest-processing-time rule)
//! keeps a long story from starting after the short ones have drained the queue. No one knows
//! how long an agent will take, but the story says how much is left of it: its open tasks and
//! subtasks, less the human-validation ones no agent does. A story that others wait on counts
//! what waits behind it too (the longest such chain), so a dependency chain starts early.

use std::collections::BTreeMap;

use crate::stories::Story;

/// `teleos.schedule`: the order in which ready stories take a free worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Most estimated work first, counting the stories that wait on each (the default).
    #[default]
    LongestFirst,
    /// The selection's order (story keys as listed, or as the scan sorted them).
    Listed,
}

impl Schedule {
    pub const NAMES: &'static [&'static str] = &["longest-first", "listed"];

    /// The value `teleos.schedule` takes for this order.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::LongestFirst => "longest-first",
            Schedule::Listed => "listed",
        }
    }

    pub fn parse(v: &str) -> Option<Schedule> {
        match v.to_ascii_lowercase().as_str() {
            "longest-first" => Some(Schedule::LongestFirst),
            "listed" => Some(Schedule::Listed),
            _ => None,
        }
    }
}

/// The work an agent has left in `story`, in tasks: the open tasks and subtasks, less those
/// that need a person; at least 1, since even a story with nothing open costs an agent run
/// (it checks, and may find something left).
pub fn estimated_work(story: &Story) -> usize {
    (story.unchecked + story.subtasks_unchecked)
        .saturating_sub(story.human_validation_tasks.len())
        .max(1)
}

/// Each story's priority: its own estimated work plus the most work that waits on it (the
/// longest chain of selected stories depending on it, transitively). Indexed like `stories`.
pub fn priorities(stories: &[Story]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = stories
        .iter()
        .enumerate()
        .map(|(i, s)| (s.story_key.as_str(), i))
        .collect();
    // Who waits on whom, among the selected stories only.
    let mut dependents = vec![Vec::new(); stories.len()];
    for (i, s) in stories.iter().enumerate() {
        for d in &s.depends_on {
            if let Some(&j) = index.get(d.as_str()) {
                if j != i {
                    dependents[j].push(i);
                }
            }
        }
    }
    let mut memo: Vec<Option<usize>> = vec![None; stories.len()];
    let mut on_path = vec![false; stories.len()];
    (0..stories.len())
        .map(|i| chain(i, stories, &dependents, &mut memo, &mut on_path))
        .collect()
}

/// The priority of story `i` (see [`priorities`]). The scan breaks dependency cycles, but a
/// cycle that got through anyway only stops the chain here; it never loops.
fn chain(
    i: usize,
    stories: &[Story],
    dependents: &[Vec<usize>],
    memo: &mut [Option<usize>],
    on_path: &mut [bool],
) -> usize {
    if let Some(p) = memo[i] {
        return p;
    }
    on_path[i] = true;
    let mut behind = 0;
    for &j in &dependents[i] {
        if !on_path[j] {
            behind = behind.max(chain(j, stories, dependents, memo, on_path));
        }
    }
    on_path[i] = false;
    let p = estimated_work(&stories[i]) + behind;
    memo[i] = Some(p);
    p
}

/// `stories` in the order `schedule` starts them when all are ready: for longest-first, by
/// priority, highest first, ties in the selection's order. Dependencies still hold whatever
/// the order: a story starts only once those it depends on have merged.
pub fn arrange(mut stories: Vec<Story>, schedule: Schedule) -> Vec<Story> {
    if schedule == Schedule::LongestFirst {
        let p = priorities(&stories);
        let mut ranked: Vec<(usize, Story)> = p.into_iter().zip(stories).collect();
        // Stable: equal priorities keep the selection's order.
        ranked.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
        stories = ranked.into_iter().map(|(_, s)| s).collect();
    }
    stories
}

/// The line a batch prints when `arranged` does not start the stories in `listed`'s order,
/// naming the first few, so that nobody wonders why a later key runs first.
pub fn describe_change(listed: &[String], arranged: &[Story]) -> Option<String> {
    if listed.iter().eq(arranged.iter().map(|s| &s.story_key)) {
        return None;
    }
    const SHOWN: usize = 4;
    let mut first: Vec<String> = arranged
        .iter()
        .take(SHOWN)
        .map(|s| format!("{} ({})", s.story_key, estimated_work(s)))
        .collect();
    if arranged.len() > SHOWN {
        first.push("…".into());
    }
    Some(format!(
        "order: longest first, by open tasks (teleos.schedule): {}",
        first.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stories::Category;

    fn story(key: &str, open: usize, deps: &[&str]) -> Story {
        let mut s = crate::batch::test_story(key, Category::Closeable, deps);
        s.unchecked = open;
        s
    }

    fn keys(stories: &[Story]) -> Vec<&str> {
        stories.iter().map(|s| s.story_key.as_str()).collect()
    }

    #[test]
    fn work_is_open_tasks_and_subtasks_less_human_ones_and_never_zero() {
        let mut s = story("a", 3, &[]);
        s.subtasks_unchecked = 4;
        assert_eq!(estimated_work(&s), 7);
        s.human_validation_tasks = vec!["Manually verify the login page".into()];
        assert_eq!(estimated_work(&s), 6);
        let mut done = story("b", 0, &[]);
        done.human_validation_tasks = vec!["QA sign-off".into()];
        assert_eq!(
            estimated_work(&done),
            1,
            "an agent run still costs something"
        );
    }

    #[test]
    fn longest_first_starts_the_most_open_work_first_and_keeps_ties_in_order() {
        // Workload B's shape: long stories at positions 0, 3, 6, 9.
        let stories: Vec<Story> = (0..12)
            .map(|i| story(&format!("s{i:02}"), if i % 3 == 0 { 8 } else { 1 }, &[]))
            .collect();
        let arranged = arrange(stories.clone(), Schedule::LongestFirst);
        assert_eq!(
            keys(&arranged),
            ["s00", "s03", "s06", "s09", "s01", "s02", "s04", "s05", "s07", "s08", "s10", "s11"]
        );
        assert_eq!(
            keys(&arrange(stories.clone(), Schedule::Listed)),
            keys(&stories),
            "listed keeps the selection's order"
        );
    }

    #[test]
    fn a_story_others_wait_on_counts_the_longest_chain_behind_it() {
        // a (1) ← b (1) ← c (5): a chain of 7 behind a; d (6) alone; e (2) ← f (1).
        let stories = vec![
            story("d", 6, &[]),
            story("e", 2, &[]),
            story("f", 1, &["e"]),
            story("a", 1, &[]),
            story("b", 1, &["a"]),
            story("c", 5, &["b"]),
        ];
        assert_eq!(priorities(&stories), [6, 3, 1, 7, 6, 5]);
        assert_eq!(
            keys(&arrange(stories, Schedule::LongestFirst)),
            ["a", "d", "b", "c", "e", "f"]
        );
    }

    #[test]
    fn unselected_dependencies_and_cycles_do_not_count_or_loop() {
        let stories = vec![
            story("x", 2, &["y", "gone"]),
            story("y", 3, &["x"]),
            story("z", 1, &["z"]),
        ];
        let p = priorities(&stories);
        // The cycle stops where it closes, wherever the walk entered it.
        assert_eq!(p[2], 1, "a story depending on itself counts once");
        assert!(p[0] >= 2 && p[1] >= 3, "{p:?}");
    }

    #[test]
    fn a_changed_order_is_described_and_an_unchanged_one_is_not() {
        let stories = vec![story("a", 1, &[]), story("b", 3, &[]), story("c", 1, &[])];
        let listed: Vec<String> = keys(&stories).iter().map(|k| k.to_string()).collect();
        let same = arrange(stories.clone(), Schedule::Listed);
        assert_eq!(describe_change(&listed, &same), None);
        let arranged = arrange(stories, Schedule::LongestFirst);
        assert_eq!(
            describe_change(&listed, &arranged).as_deref(),
            Some("order: longest first, by open tasks (teleos.schedule): b (3), a (1), c (1)")
        );
    }

    #[test]
    fn schedule_names_round_trip() {
        for name in Schedule::NAMES {
            assert_eq!(Schedule::parse(name).map(Schedule::name), Some(*name));
        }
        assert_eq!(
            Schedule::parse("Longest-First"),
            Some(Schedule::LongestFirst)
        );
        assert_eq!(Schedule::parse("fifo"), None);
    }
}
