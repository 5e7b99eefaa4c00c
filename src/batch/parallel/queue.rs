//! The dependency queue shared by the worktree slots: a story starts once the selected stories
//! it depends on have merged; one whose dependency failed never starts; the queue stops on
//! Ctrl-C, the circuit breaker or the budget, and ends when nothing running can unblock the rest
//! (a cycle). It also keeps the count of worktree slots, so that the next worktree is made only
//! while a ready story waits for one (README, "Parallel mode"). Pure: no git, no files.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::batch::results::{Outcome, StoryResult};
use crate::batch::sequential::Stopper;
use crate::stories::Story;

/// The shared queue: stories wait until the selected stories they depend on have merged.
pub(super) struct Queue {
    pub(super) pending: Vec<Story>,
    pub(super) running: usize,
    pub(super) merged: BTreeSet<String>,
    pub(super) failed: BTreeSet<String>,
    pub(super) selected: BTreeSet<String>,
    pub(super) results: Vec<StoryResult>,
    pub(super) stopper: Stopper,
    pub(super) stopped: Option<String>,
    /// An agent said it is not authenticated: no story starts after it.
    pub(super) setup_error: Option<String>,
    /// Slot threads started and not yet ended (being made, running, or waiting for a story).
    pub(super) live: usize,
    /// A worktree is being made (checked out) now: the next waits for it.
    pub(super) creating: bool,
    /// A worktree could not be made: no more are tried (the cause is usually the same for
    /// all, and each try could take a set-up timeout).
    pub(super) creation_failed: bool,
}

pub(super) enum Next {
    Run(Box<Story>),
    Done,
}

impl Queue {
    /// A queue of the selected `stories`, nothing run yet.
    pub(super) fn new(stories: Vec<Story>, stopper: Stopper) -> Queue {
        let selected = stories.iter().map(|s| s.story_key.clone()).collect();
        Queue {
            pending: stories,
            running: 0,
            merged: BTreeSet::new(),
            failed: BTreeSet::new(),
            selected,
            results: Vec::new(),
            stopper,
            stopped: None,
            setup_error: None,
            live: 0,
            creating: false,
            creation_failed: false,
        }
    }

    /// The next story this worker should run, waiting while dependencies are still running.
    /// `waited` is set when the worker had to wait for a dependency (drawn on its lane).
    pub(super) fn next(
        lock: &Mutex<Queue>,
        cv: &Condvar,
        cancel: &AtomicBool,
        waited: &mut bool,
    ) -> Next {
        let Ok(mut q) = lock.lock() else {
            return Next::Done;
        };
        loop {
            if cancel.load(Ordering::SeqCst) {
                q.stopped.get_or_insert_with(|| "interrupted".into());
            }
            if q.stopped.is_none() {
                if let Some(why) = q.stopper.reason() {
                    q.stopped = Some(why);
                }
            }
            if q.stopped.is_some() || q.pending.is_empty() {
                return Next::Done;
            }
            // A story whose dependency failed cannot start: it would miss that work.
            let mut i = 0;
            while i < q.pending.len() {
                let blocked_by = q.pending[i]
                    .depends_on
                    .iter()
                    .find(|d| q.failed.contains(*d))
                    .cloned();
                if let Some(dep) = blocked_by {
                    let s = q.pending.remove(i);
                    let why = format!("its dependency {dep} did not land");
                    q.failed.insert(s.story_key.clone());
                    q.results
                        .push(StoryResult::not_run(&s, Outcome::NotStarted, Some(why)));
                    cv.notify_all();
                } else {
                    i += 1;
                }
            }
            let ready = q.pending.iter().position(|s| {
                s.depends_on
                    .iter()
                    .filter(|d| q.selected.contains(*d))
                    .all(|d| q.merged.contains(d))
            });
            if let Some(i) = ready {
                let s = q.pending.remove(i);
                q.running += 1;
                // One slot fewer is free: the creator may need to make another.
                cv.notify_all();
                return Next::Run(Box::new(s));
            }
            if q.running == 0 {
                // Nothing running can unblock what is left (a cycle the scan did not break).
                return Next::Done;
            }
            // Wake up now and then to notice Ctrl-C.
            *waited = true;
            q = match cv.wait_timeout(q, Duration::from_millis(200)) {
                Ok((g, _)) => g,
                Err(_) => return Next::Done,
            };
        }
    }

    /// How many pending stories could start now (every selected dependency merged).
    fn ready_count(&self) -> usize {
        self.pending
            .iter()
            .filter(|s| {
                s.depends_on
                    .iter()
                    .filter(|d| self.selected.contains(*d))
                    .all(|d| self.merged.contains(d))
            })
            .count()
    }

    /// Whether another worktree should be made now: none is being made, and more stories are
    /// ready than there are slots free or about to be (a slot being set up counts as free).
    pub(super) fn wants_slot(&self) -> bool {
        self.stopped.is_none()
            && !self.creating
            && !self.creation_failed
            && self.ready_count() > self.live.saturating_sub(self.running)
    }

    /// Whether no further worktree will ever be wanted: the queue is empty or stopped, or a
    /// worktree could not be made.
    pub(super) fn creation_over(&self) -> bool {
        self.stopped.is_some() || self.pending.is_empty() || self.creation_failed
    }

    pub(super) fn finish(lock: &Mutex<Queue>, cv: &Condvar, result: StoryResult, merged: bool) {
        if let Ok(mut q) = lock.lock() {
            q.running = q.running.saturating_sub(1);
            if merged {
                q.merged.insert(result.story_key.clone());
            } else {
                q.failed.insert(result.story_key.clone());
            }
            q.stopper.record(&result);
            if let Some(e) = &result.setup_error {
                q.stopped
                    .get_or_insert_with(|| format!("the agent is not authenticated: {e}"));
                q.setup_error.get_or_insert_with(|| e.clone());
            }
            q.results.push(result);
        }
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stories::Category;

    fn story(key: &str, deps: &[&str]) -> Story {
        crate::batch::test_story(key, Category::Closeable, deps)
    }

    fn queue(stories: Vec<Story>) -> Mutex<Queue> {
        Mutex::new(Queue::new(stories, Stopper::new(0, None)))
    }

    /// The key of the story `next` hands out, or `None` when it says the queue is done.
    fn next(q: &Mutex<Queue>, cv: &Condvar, cancel: &AtomicBool) -> Option<String> {
        let mut waited = false;
        match Queue::next(q, cv, cancel, &mut waited) {
            Next::Run(s) => Some(s.story_key),
            Next::Done => None,
        }
    }

    fn finish(q: &Mutex<Queue>, cv: &Condvar, key: &str, merged: bool) {
        let outcome = if merged {
            Outcome::Completed
        } else {
            Outcome::Error
        };
        let r = StoryResult::not_run(&story(key, &[]), outcome, None);
        Queue::finish(q, cv, r, merged);
    }

    #[test]
    fn ready_stories_run_in_order_and_a_dependent_waits_for_its_merge() {
        let q = queue(vec![
            story("1-2-b", &["1-1-a"]),
            story("1-1-a", &[]),
            story("1-3-c", &[]),
        ]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-1-a"));
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-3-c"));
        finish(&q, &cv, "1-1-a", true);
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-2-b"));
        finish(&q, &cv, "1-3-c", true);
        finish(&q, &cv, "1-2-b", true);
        assert_eq!(next(&q, &cv, &cancel), None);
        let q = q.into_inner().unwrap();
        assert_eq!(q.running, 0);
        assert_eq!(q.results.len(), 3);
        assert!(q.stopped.is_none());
    }

    #[test]
    fn a_dependency_outside_the_selection_does_not_hold_a_story_back() {
        let q = queue(vec![story("1-2-b", &["1-1-a"])]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-2-b"));
    }

    #[test]
    fn a_failed_dependency_blocks_its_dependents_and_theirs() {
        let q = queue(vec![
            story("1-1-a", &[]),
            story("1-2-b", &["1-1-a"]),
            story("1-3-c", &["1-2-b"]),
            story("1-4-d", &[]),
        ]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-1-a"));
        finish(&q, &cv, "1-1-a", false);
        // b and c never start; d, independent, still runs.
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-4-d"));
        finish(&q, &cv, "1-4-d", true);
        assert_eq!(next(&q, &cv, &cancel), None);
        let q = q.into_inner().unwrap();
        let not_started: Vec<(&str, Option<&str>)> = q
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::NotStarted)
            .map(|r| (r.story_key.as_str(), r.error_message.as_deref()))
            .collect();
        assert_eq!(
            not_started,
            vec![
                ("1-2-b", Some("its dependency 1-1-a did not land")),
                ("1-3-c", Some("its dependency 1-2-b did not land")),
            ]
        );
        assert!(q.pending.is_empty());
    }

    #[test]
    fn cancel_stops_the_queue_and_leaves_the_rest_pending() {
        let q = queue(vec![story("1-1-a", &[]), story("1-2-b", &[])]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-1-a"));
        cancel.store(true, Ordering::SeqCst);
        assert_eq!(next(&q, &cv, &cancel), None);
        let q = q.into_inner().unwrap();
        assert_eq!(q.stopped.as_deref(), Some("interrupted"));
        assert_eq!(q.pending.len(), 1);
        assert_eq!(q.pending[0].story_key, "1-2-b");
    }

    #[test]
    fn a_cycle_ends_the_queue_instead_of_waiting_forever() {
        let q = queue(vec![story("1-1-a", &["1-2-b"]), story("1-2-b", &["1-1-a"])]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        assert_eq!(next(&q, &cv, &cancel), None);
        let q = q.into_inner().unwrap();
        assert_eq!(q.pending.len(), 2, "nothing of the cycle ran");
        assert_eq!(q.running, 0);
    }

    #[test]
    fn a_worktree_is_wanted_only_while_a_ready_story_waits_for_one() {
        let q = queue(vec![
            story("1-1-a", &[]),
            story("1-2-b", &[]),
            story("1-3-c", &[]),
        ]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        let made = |q: &Mutex<Queue>| {
            let mut q = q.lock().unwrap();
            q.live += 1;
            q.creating = false;
        };
        assert!(q.lock().unwrap().wants_slot(), "nothing runs yet");
        q.lock().unwrap().creating = true;
        assert!(!q.lock().unwrap().wants_slot(), "one is made at a time");
        made(&q);
        // A slot being set up counts as free: it takes one story, two more wait.
        assert!(q.lock().unwrap().wants_slot());
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-1-a"));
        assert!(q.lock().unwrap().wants_slot(), "two wait, no slot free");
        made(&q);
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-2-b"));
        assert!(q.lock().unwrap().wants_slot(), "one waits, no slot free");
        made(&q);
        assert!(
            !q.lock().unwrap().wants_slot(),
            "the third slot will take the last story"
        );
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-3-c"));
        let q = q.into_inner().unwrap();
        assert!(!q.wants_slot() && q.creation_over(), "the queue is empty");
    }

    #[test]
    fn a_chain_of_dependencies_never_wants_a_second_worktree() {
        let q = queue(vec![
            story("1-1-a", &[]),
            story("1-2-b", &["1-1-a"]),
            story("1-3-c", &["1-2-b"]),
        ]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        q.lock().unwrap().live = 1;
        for (key, then) in [("1-1-a", "1-2-b"), ("1-2-b", "1-3-c")] {
            assert_eq!(next(&q, &cv, &cancel).as_deref(), Some(key));
            assert!(!q.lock().unwrap().wants_slot(), "{then} is not ready");
            finish(&q, &cv, key, true);
            // Ready now, but the slot that ran the dependency is free for it.
            assert!(!q.lock().unwrap().wants_slot(), "{then} has a slot");
        }
        assert!(!q.lock().unwrap().creation_over());
        q.lock().unwrap().creation_failed = true;
        assert!(q.lock().unwrap().creation_over());
    }

    #[test]
    fn an_unauthenticated_agent_stops_the_queue() {
        let q = queue(vec![story("1-1-a", &[]), story("1-2-b", &[])]);
        let (cv, cancel) = (Condvar::new(), AtomicBool::new(false));
        assert_eq!(next(&q, &cv, &cancel).as_deref(), Some("1-1-a"));
        let mut r = StoryResult::not_run(&story("1-1-a", &[]), Outcome::Error, None);
        r.setup_error = Some("not logged in".into());
        Queue::finish(&q, &cv, r, false);
        assert_eq!(next(&q, &cv, &cancel), None);
        let q = q.into_inner().unwrap();
        assert_eq!(q.setup_error.as_deref(), Some("not logged in"));
        assert!(q.stopped.unwrap().contains("not authenticated"));
    }
}
