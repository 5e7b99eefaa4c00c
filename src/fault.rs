//! Crash points for the reliability tests. In a debug build (what `cargo test` runs), setting
//! `TELEOS_FAULT=<point>` makes the process abort at that point, as a crash or SIGKILL would,
//! and `TELEOS_FAULT=panic-once:<point>` makes the first thread that gets there panic, as a bug
//! would; release builds compile this to nothing.

/// The points the tests can crash at, in the order a parallel batch reaches them.
pub const POINTS: &[&str] = &[
    "after-worktree-create",
    "mid-setup",
    "agent-running",
    "merge-before-ref-update",
    "landing",
    "cleanup",
    "worktree-removal",
];

#[cfg(debug_assertions)]
static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Abort (or panic) here if the tests asked for it.
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if let Some(v) = std::env::var_os("TELEOS_FAULT") {
        if v == name {
            eprintln!("git-teleos: fault injected at {name}");
            std::process::abort();
        }
        let once = v.to_str().and_then(|v| v.strip_prefix("panic-once:")) == Some(name);
        if once && !PANICKED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("fault injected at {name}");
        }
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
