//! Crash points for the reliability tests. In a debug build (what `cargo test` runs), setting
//! `TELEOS_FAULT=<point>` makes the process abort at that point, as a crash or SIGKILL would;
//! release builds compile this to nothing.

/// The points the tests can crash at, in the order a parallel batch reaches them.
pub const POINTS: &[&str] = &[
    "after-worktree-create",
    "mid-setup",
    "agent-running",
    "merge-before-ref-update",
    "landing",
    "cleanup",
];

/// Abort here if the tests asked for it.
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("TELEOS_FAULT").is_some_and(|v| v == name) {
        eprintln!("git-teleos: fault injected at {name}");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Abort after `delay` on another thread if the tests asked for `name` (a crash while
/// something else, such as an agent, is running).
pub fn point_later(name: &'static str, delay: std::time::Duration) {
    #[cfg(debug_assertions)]
    if std::env::var_os("TELEOS_FAULT").is_some_and(|v| v == name) {
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            point(name);
        });
    }
    #[cfg(not(debug_assertions))]
    let _ = (name, delay);
}
