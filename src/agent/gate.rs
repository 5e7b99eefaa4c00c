//! The hook a batch uses to decide when an agent may start (staggered starts, a concurrency
//! limit, a shared pause after a provider's rate limit). The runner only calls it; the policy
//! lives in `batch::governor`.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Asked before every agent start and told how each run ended.
pub trait StartGate: Sync {
    /// Block until an agent may start (or `cancel` is set); the caller then holds one of the
    /// running places until [`StartGate::release`]. Returns the time waited on rate limits.
    fn acquire(&self, cancel: &AtomicBool) -> Duration;
    /// The agent started by the matching `acquire` has ended.
    fn release(&self);
    /// A provider turned an agent away for its rate or usage limit: hold new starts for
    /// `backoff`.
    fn rate_limited(&self, backoff: Duration);
}
