//! One governor for all the workers of a parallel batch: when an agent may start.
//!
//! Ten agents started at the same moment is how users hit a provider's limits: the first few
//! run and the rest are refused. So the ramp-up is staggered: a start that brings more agents
//! at once than ever before in the batch waits until `teleos.agentStagger` after the previous
//! start (README explains the default). The wait counts from that start, so the time the slot
//! spent making its worktree counts towards it. A start that only replaces an agent that just
//! ended is not a burst and is not held. A rate-limit signal from any worker (429,
//! `rate_limit_error`, quota messages) is shared: new starts pause for the back-off, the number
//! of agents allowed at once drops by one, and it climbs back by one after each quiet period
//! without a signal, never above `--parallel N`.
//! While it is below N, starts are also spaced by the last back-off, so the climb is gentle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::agent::StartGate;

/// Something the governor did, in order (the batch record keeps them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernorEvent {
    /// `rate_limited` (limit lowered, or held at 1) or `limit_raised`.
    pub event: String,
    /// Agents allowed at once after the event.
    pub limit: usize,
    /// For `rate_limited`: how long new starts are held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_secs: Option<f64>,
}

/// What the debrief and `--json` show about the governor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GovernorSummary {
    /// `--parallel N`: the limit never goes above it.
    pub max_parallel: usize,
    /// Agents allowed at once when the batch ended.
    pub limit: usize,
    /// The lowest the limit went.
    pub min_limit: usize,
    pub rate_limit_signals: usize,
    /// Seconds the stories' agents waited on rate limits, summed over stories.
    pub rate_limit_wait_secs: f64,
    pub events: Vec<GovernorEvent>,
}

/// What holds a start back: a pause after a rate limit and the stagger since the previous
/// start (each until when), or, with neither, the limit on agents at once.
struct Held {
    paused: Option<Instant>,
    next_start: Option<Instant>,
}

struct State {
    limit: usize,
    min_limit: usize,
    running: usize,
    last_start: Option<Instant>,
    paused_until: Option<Instant>,
    last_signal: Option<Instant>,
    /// Spacing between starts while the limit is below the maximum.
    caution: Duration,
    /// The most agents that ran at once so far: the stagger spaces only starts that go beyond
    /// it, the ramp-up that would reach the provider all at once.
    peak: usize,
    signals: usize,
    events: Vec<GovernorEvent>,
}

/// Longest single wait before looking at the cancel flag again.
const TICK: Duration = Duration::from_millis(100);

pub struct Governor<'a> {
    max: usize,
    stagger: Duration,
    quiet: Duration,
    state: Mutex<State>,
    cv: Condvar,
    /// Told of every change, for the progress display.
    notify: Option<&'a (dyn Fn(&str) + Sync)>,
}

impl<'a> Governor<'a> {
    /// `max` agents at once at most; starts `stagger` apart; the limit climbs back by one after
    /// each `quiet` period without a rate-limit signal.
    pub fn new(
        max: usize,
        stagger: Duration,
        quiet: Duration,
        notify: Option<&'a (dyn Fn(&str) + Sync)>,
    ) -> Self {
        let max = max.max(1);
        Governor {
            max,
            stagger,
            quiet,
            state: Mutex::new(State {
                limit: max,
                min_limit: max,
                running: 0,
                last_start: None,
                paused_until: None,
                last_signal: None,
                caution: Duration::ZERO,
                peak: 0,
                signals: 0,
                events: Vec::new(),
            }),
            cv: Condvar::new(),
            notify,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked holding the lock left consistent counters: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How far apart starts must be now: the stagger while the agents ramp up (this start
    /// would bring more of them at once than ever before), the larger of it and the caution
    /// while the limit is lowered, and nothing otherwise. A start that replaces an agent that
    /// ended (the next story of a slot) is not a burst: spacing every start would add the
    /// stagger to every story of a batch of short ones.
    fn spacing(&self, st: &State) -> Duration {
        if st.limit < self.max {
            self.stagger.max(st.caution)
        } else if st.running >= st.peak {
            self.stagger
        } else {
            Duration::ZERO
        }
    }

    fn say(&self, text: &str) {
        if let Some(f) = self.notify {
            f(text);
        }
    }

    /// After a quiet period without signals, allow one more agent (one step per period).
    fn maybe_raise(&self, st: &mut State, now: Instant) {
        let quiet_enough = st
            .last_signal
            .is_some_and(|t| now.duration_since(t) >= self.quiet);
        if st.limit < self.max && quiet_enough {
            st.limit += 1;
            st.last_signal = Some(now);
            let limit = st.limit;
            st.events.push(GovernorEvent {
                event: "limit_raised".into(),
                limit,
                pause_secs: None,
            });
            self.say(&format!(
                "rate limit: quiet again, up to {} agents at once (of {})",
                st.limit, self.max
            ));
            self.cv.notify_all();
        }
    }

    /// [`StartGate::acquire`] without waiting, for the remote runners' loop, which polls
    /// rather than blocks: whether one more job may be dispatched now (the caller then holds a
    /// place until [`StartGate::release`]).
    pub fn try_acquire(&self) -> bool {
        let mut st = self.lock();
        self.try_start(&mut st, Instant::now()).is_ok()
    }

    /// Take a place now if nothing holds the start back; otherwise say what does.
    fn try_start(&self, st: &mut State, now: Instant) -> std::result::Result<(), Held> {
        self.maybe_raise(st, now);
        let paused = st.paused_until.filter(|p| *p > now);
        let spacing = self.spacing(st);
        let next_start = st.last_start.map(|t| t + spacing).filter(|t| *t > now);
        if paused.is_none() && next_start.is_none() && st.running < st.limit {
            st.running += 1;
            st.peak = st.peak.max(st.running);
            st.last_start = Some(now);
            return Ok(());
        }
        Err(Held { paused, next_start })
    }

    /// The record for the debrief; `story_waits` is the sum of the stories' waits.
    pub fn summary(&self, story_waits: f64) -> GovernorSummary {
        let st = self.lock();
        GovernorSummary {
            max_parallel: self.max,
            limit: st.limit,
            min_limit: st.min_limit,
            rate_limit_signals: st.signals,
            rate_limit_wait_secs: story_waits,
            events: st.events.clone(),
        }
    }
}

impl StartGate for Governor<'_> {
    fn acquire(&self, cancel: &AtomicBool) -> Duration {
        let mut waited_on_limits = Duration::ZERO;
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            if cancel.load(Ordering::SeqCst) {
                // The caller stops at once; it still holds a place until it releases.
                st.running += 1;
                return waited_on_limits;
            }
            let Err(held) = self.try_start(&mut st, now) else {
                return waited_on_limits;
            };
            let limited = st.limit < self.max;
            let wake = held
                .paused
                .into_iter()
                .chain(held.next_start)
                .max()
                .map_or(TICK, |t| t.duration_since(now))
                .clamp(Duration::from_millis(5), TICK);
            st = match self.cv.wait_timeout(st, wake) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
            if held.paused.is_some() || limited {
                waited_on_limits += now.elapsed();
            }
        }
    }

    fn release(&self) {
        let mut st = self.lock();
        st.running = st.running.saturating_sub(1);
        self.maybe_raise(&mut st, Instant::now());
        drop(st);
        self.cv.notify_all();
    }

    fn rate_limited(&self, backoff: Duration) {
        let mut st = self.lock();
        let now = Instant::now();
        // Workers refused together are one signal: lower the limit once per pause.
        let already_paused = st.paused_until.is_some_and(|p| p > now);
        let until = now + backoff;
        st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
        st.last_signal = Some(now);
        st.caution = backoff;
        st.signals += 1;
        if !already_paused {
            st.limit = st.limit.saturating_sub(1).max(1);
            st.min_limit = st.min_limit.min(st.limit);
            let limit = st.limit;
            st.events.push(GovernorEvent {
                event: "rate_limited".into(),
                limit,
                pause_secs: Some(backoff.as_secs_f64()),
            });
            self.say(&format!(
                "rate limit: new agents wait {:.1}s; up to {} at once (of {})",
                backoff.as_secs_f64(),
                st.limit,
                self.max
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_drops_once_per_pause_and_climbs_back_to_the_maximum() {
        let g = Governor::new(3, Duration::ZERO, Duration::ZERO, None);
        let cancel = AtomicBool::new(false);
        for _ in 0..3 {
            g.acquire(&cancel);
        }
        g.rate_limited(Duration::from_secs(60));
        g.rate_limited(Duration::from_secs(60));
        {
            let st = g.lock();
            assert_eq!((st.limit, st.signals, st.events.len()), (2, 2, 1));
        }
        // Quiet period of zero: each release lets one more back in, up to 3 and no further.
        for _ in 0..3 {
            g.release();
        }
        let s = g.summary(1.5);
        assert_eq!((s.limit, s.min_limit, s.max_parallel), (3, 2, 3));
        let kinds: Vec<&str> = s.events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["rate_limited", "limit_raised"]);
        assert!(s.events.iter().all(|e| e.limit <= 3));
    }

    #[test]
    fn only_the_ramp_up_and_a_lowered_limit_are_staggered() {
        let stagger = Duration::from_secs(2);
        let g = Governor::new(3, stagger, Duration::from_secs(3600), None);
        let mut st = g.lock();
        assert_eq!(g.spacing(&st), stagger, "the first agents start apart");
        (st.running, st.peak) = (1, 1);
        assert_eq!(g.spacing(&st), stagger, "a second agent at once: apart");
        (st.running, st.peak) = (0, 1);
        assert_eq!(
            g.spacing(&st),
            Duration::ZERO,
            "the next story of the only slot so far starts at once"
        );
        (st.running, st.peak) = (2, 3);
        assert_eq!(
            g.spacing(&st),
            Duration::ZERO,
            "a freed slot starts at once"
        );
        st.limit = 2;
        st.caution = Duration::from_secs(5);
        assert_eq!(
            g.spacing(&st),
            Duration::from_secs(5),
            "after a rate limit, carefully"
        );
    }

    #[test]
    fn try_acquire_holds_dispatches_while_paused_and_lowered() {
        let g = Governor::new(2, Duration::ZERO, Duration::from_secs(3600), None);
        assert!(g.try_acquire() && g.try_acquire());
        assert!(!g.try_acquire(), "both places taken");
        g.release();
        g.rate_limited(Duration::from_secs(3600));
        g.release();
        // Limit 1 now, and paused: nothing goes out until the pause ends.
        assert!(!g.try_acquire());
        assert_eq!(g.lock().limit, 1);
    }

    #[test]
    fn never_below_one_and_cancel_does_not_block() {
        let g = Governor::new(1, Duration::ZERO, Duration::from_secs(3600), None);
        let cancel = AtomicBool::new(false);
        g.acquire(&cancel);
        g.rate_limited(Duration::from_secs(3600));
        assert_eq!(g.lock().limit, 1);
        g.release();
        // Paused for an hour: only the cancel flag gets this caller through.
        cancel.store(true, Ordering::SeqCst);
        g.acquire(&cancel);
        g.release();
        assert_eq!(g.lock().running, 0);
    }
}
