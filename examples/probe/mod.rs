//! What the per-story probes (`story_overhead`, `story_overhead_merge`) share: git run with a
//! fixed identity, and this process's CPU time. Included with `#[path]`; not an example itself.

use std::path::Path;
use std::process::Command;

/// Run `git args` in `dir` as the probe's identity; its trimmed stdout. Panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=probe",
            "-c",
            "user.email=probe@example.com",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// CPU seconds (user + system) used by this process so far, all threads.
pub fn cpu() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}
