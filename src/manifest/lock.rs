//! The session lock: an exclusive `flock` on `<dir>/.teleos-<sid>.lock`, held for a session's
//! whole life. The kernel drops it when the process dies however it dies (SIGKILL included), and
//! it cannot be confused by pid reuse, so a held lock is the proof of liveness clean-up relies on.
//!
//! Order that keeps the proof sound: acquire the lock *before* the session is added to the
//! manifest, and remove the session from the manifest *before* dropping the lock.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Holds a session's lock; dropping it releases the lock (the file stays, see
/// [`SessionLock::release_and_remove`]).
#[derive(Debug)]
pub struct SessionLock {
    file: File,
    path: PathBuf,
    sid: String,
}

/// Whether `sid` is a session id of ours: exactly 6 lowercase hex characters.
pub fn is_valid_sid(sid: &str) -> bool {
    sid.len() == 6 && sid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<dir>/.teleos-<sid>.lock`.
pub fn session_lock_path(dir: &Path, sid: &str) -> PathBuf {
    dir.join(format!(".teleos-{sid}.lock"))
}

impl SessionLock {
    /// Takes the session's lock without waiting: a held lock means the session is running
    /// elsewhere, which is an error rather than something to wait for. Creates `dir` if needed.
    pub fn acquire(dir: &Path, sid: &str) -> Result<SessionLock> {
        if !is_valid_sid(sid) {
            return Err(Error::usage_hint(
                format!("invalid session id {sid:?}"),
                "a session id is exactly 6 lowercase hex characters, e.g. 3fa9c0",
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let path = session_lock_path(dir, sid);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false) // truncating before holding the lock would wipe a live holder's note
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Setup {
                    message: format!("session {sid} is in use by another process"),
                    hints: vec![format!(
                        "its lock {} is held; wait for that run to finish",
                        path.display()
                    )],
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", path.display()), e))
            }
        }
        // For humans only: nothing reads this back, the lock itself is the proof.
        let note = format!(
            "pid {}\nstarted_at {}\nhost {}\n",
            std::process::id(),
            super::format_time(super::now_unix()),
            super::hostname()
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(note.as_bytes()))
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        Ok(SessionLock {
            file,
            path,
            sid: sid.to_string(),
        })
    }

    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the lock file while still holding the lock, then releases it: for a session that
    /// is finished and already gone from the manifest. Anyone who opened the file before sees the
    /// lock free afterwards, which is the truth.
    pub fn release_and_remove(self) -> Result<()> {
        let removed = std::fs::remove_file(&self.path);
        drop(self.file);
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                format!("cannot remove {}", self.path.display()),
                e,
            )),
        }
    }
}
