//! Worktrees on demand (README, "Parallel mode"): the first worktree is made at once and its
//! agent starts as soon as it is there; the next is made, in the background while agents run,
//! only while a ready story waits for a slot, one checkout at a time; none is made once the
//! queue is empty. A slot with nothing left to do gives its worktree back at once, while the
//! others still run, instead of at the end of the batch.
//!
//! One checkout at a time, because gix's checkout already spreads one worktree over every core
//! (BENCHMARKS.md, "Worktree checkout"): two at once only share the same cores and disk, and
//! both finish later than the first alone would. A slot's set-up (an install command, mostly
//! waiting on the network) does not hold the next checkout back.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::lock;
use super::queue::Queue;
use crate::git;

/// Wait until one more worktree is wanted, and claim its making (the slot counts as live and
/// as being made). `false`: none will be wanted any more (queue empty or stopped, a worktree
/// could not be made, Ctrl-C, or every slot has ended with nothing ready).
pub(super) fn claim_next_slot(queue: &Mutex<Queue>, cv: &Condvar, cancel: &AtomicBool) -> bool {
    let mut q = lock(queue);
    loop {
        if cancel.load(Ordering::SeqCst) || q.creation_over() {
            return false;
        }
        if q.wants_slot() {
            q.live += 1;
            q.creating = true;
            return true;
        }
        if q.live == 0 && !q.creating {
            // Nothing runs and nothing is ready (a cycle): no slot can ever be wanted.
            return false;
        }
        // Woken by every start, finish and slot change; now and then for Ctrl-C.
        q = match cv.wait_timeout(q, Duration::from_millis(200)) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        };
    }
}

/// Wait until every slot has left its story loop (some may still be removing their worktrees):
/// no story runs any more and none will start.
pub(super) fn wait_all_left(queue: &Mutex<Queue>, cv: &Condvar) {
    let mut q = lock(queue);
    while q.live > 0 || q.creating {
        // Woken by every slot that leaves (`SlotTicket::leave`), also by a panic's drop.
        q = match cv.wait_timeout(q, Duration::from_millis(200)) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        };
    }
}

/// A slot's place in the count: says when its worktree is made (the next may then be made), and
/// gives the place back when the slot ends, also by a panic.
pub(super) struct SlotTicket<'a> {
    queue: &'a Mutex<Queue>,
    cv: &'a Condvar,
    made: Cell<bool>,
    left: Cell<bool>,
}

impl<'a> SlotTicket<'a> {
    /// For a slot [`claim_next_slot`] claimed.
    pub(super) fn new(queue: &'a Mutex<Queue>, cv: &'a Condvar) -> Self {
        SlotTicket {
            queue,
            cv,
            made: Cell::new(false),
            left: Cell::new(false),
        }
    }

    /// The worktree is checked out (its set-up may still run): the next may be made.
    pub(super) fn made(&self) {
        if !self.made.replace(true) {
            lock(self.queue).creating = false;
            self.cv.notify_all();
        }
    }

    /// The worktree could not be made or set up: no other is tried.
    pub(super) fn failed(&self) {
        let mut q = lock(self.queue);
        q.creation_failed = true;
        if !self.made.replace(true) {
            q.creating = false;
        }
        drop(q);
        self.cv.notify_all();
    }

    /// The slot ends; returns how many other slots are still live.
    pub(super) fn leave(&self) -> usize {
        let mut q = lock(self.queue);
        if !self.made.replace(true) {
            q.creating = false;
        }
        if !self.left.replace(true) {
            q.live = q.live.saturating_sub(1);
        }
        let others = q.live;
        drop(q);
        self.cv.notify_all();
        others
    }
}

impl Drop for SlotTicket<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// What the user's checkout looks like before any agent starts (agents must not touch it; if
/// one does, the debrief says so). Walking 20,000 files takes as long as half a checkout, so
/// it runs on a thread of its own while the first worktree is made; each slot waits for it
/// before its first story.
pub(super) struct Baseline {
    /// The changed paths, and what the walk proved of the other files' stat data (for the walk
    /// after the batch: see `git::Refreshed`).
    walked: Mutex<Option<(BTreeSet<String>, Option<git::Refreshed>)>>,
    cv: Condvar,
}

impl Baseline {
    pub(super) fn new() -> Self {
        Baseline {
            walked: Mutex::new(None),
            cv: Condvar::new(),
        }
    }

    pub(super) fn set(&self, paths: BTreeSet<String>, refreshed: Option<git::Refreshed>) {
        *lock(&self.walked) = Some((paths, refreshed));
        self.cv.notify_all();
    }

    /// Wait until [`Baseline::set`] was called.
    pub(super) fn wait(&self) {
        let mut p = lock(&self.walked);
        while p.is_none() {
            p = match self.cv.wait(p) {
                Ok(g) => g,
                Err(e) => e.into_inner(),
            };
        }
    }

    /// What the walk proved, for the walk after the batch (taken: it is used once).
    pub(super) fn take_refreshed(&self) -> Option<git::Refreshed> {
        lock(&self.walked).as_mut().and_then(|(_, r)| r.take())
    }

    /// The paths (none if it was never set).
    pub(super) fn into_paths(self) -> BTreeSet<String> {
        self.walked
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(paths, _)| paths)
            .unwrap_or_default()
    }
}
