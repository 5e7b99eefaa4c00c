//! Process groups and pids: signalling, stopping, "is it still there?", and the parent-death
//! signal set between fork and exec.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// Whether a process with this pid exists on this host, owned by anyone. Refuses pids ≤ 0,
/// which `kill` would take as process groups.
///
/// `EPERM` counts as alive: it means the process exists and only our right to signal it is
/// missing. Reading it as "gone" would let clean-up treat a running session as dead and take
/// its worktrees; reading it as "alive" at worst keeps something a little longer.
pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && exists(pid)
}

/// Whether process group `pgid` has any member left (zombies included), with the same reading
/// of `EPERM` as [`pid_alive`].
pub fn group_alive(pgid: i32) -> bool {
    pgid > 1 && exists(-pgid)
}

/// `kill(target, 0)`: 0 or `EPERM` means something is there.
fn exists(target: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence and permission; nothing is sent.
    let rc = unsafe { libc::kill(target, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Send `sig` to every process of group `pgid`; false when it could not be delivered (the
/// group is gone, or not ours to signal). Group ids ≤ 1 are refused: `kill(-1)` would address
/// every process we may signal.
pub fn signal_group(pgid: i32, sig: libc::c_int) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill has no memory-safety preconditions; a negative pid addresses the group.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// End whatever is left in group `pgid`: SIGTERM, then SIGKILL after `grace`.
pub fn stop_group(pgid: i32, grace: Duration) {
    stop_groups(&[pgid], grace);
}

/// [`stop_group`] for several groups at once, sharing one grace period.
pub fn stop_groups(pgids: &[i32], grace: Duration) {
    let mut left: Vec<i32> = pgids
        .iter()
        .copied()
        .filter(|&g| signal_group(g, libc::SIGTERM))
        .collect();
    let until = Instant::now() + grace;
    while !left.is_empty() && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
        left.retain(|&g| group_alive(g));
    }
    for g in left {
        signal_group(g, libc::SIGKILL);
    }
}

/// Ask the kernel to SIGKILL the child when the thread that spawned it dies, so a crashed
/// git-teleos leaves no agent running. The spawning thread blocks until the child exits
/// ([`super::Cmd::run`]), so the signal fires only when git-teleos itself dies.
#[cfg(target_os = "linux")]
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid is async-signal-safe; it is called here, before fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec only async-signal-safe calls may run and nothing may
    // allocate (another thread may have held the allocator's lock at fork time). prctl and
    // getppid are async-signal-safe, and both error values below are plain OS error codes,
    // which `io::Error` stores without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn die_with_parent(_cmd: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive_and_bad_pids_are_not() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0) && !pid_alive(-1));
        // pid 1 exists in every pid namespace; as a non-root user this is the EPERM case.
        assert!(pid_alive(1));
        assert!(!group_alive(1) && !signal_group(1, 0) && !signal_group(0, 0));
    }
}
