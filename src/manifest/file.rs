//! `manifest.json` on disk: lock-free reads, read-modify-write under an exclusive lock, atomic
//! replacement by rename (synced to disk for a session's lasting entries, not for what only
//! the running process needs), and `--repair` for a file that does not parse.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::schema::Manifest;
use crate::error::{Error, Result};

/// File name of the manifest inside the worktrees folder (the seed's).
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the lock beside it. A separate file, because the manifest itself is replaced
/// by rename and a lock on a replaced inode would guard nothing.
pub const LOCK_FILE: &str = "manifest.lock";

/// The manifest of one worktrees folder (e.g. `<root>/.claude/worktrees`).
#[derive(Debug, Clone)]
pub struct ManifestFile {
    dir: PathBuf,
    path: PathBuf,
    lock_path: PathBuf,
}

impl ManifestFile {
    pub fn new(dir: &Path) -> ManifestFile {
        ManifestFile {
            dir: dir.to_path_buf(),
            path: dir.join(MANIFEST_FILE),
            lock_path: dir.join(LOCK_FILE),
        }
    }

    /// `<dir>/manifest.json`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/manifest.lock`.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The manifest as it is now, or `None` when there is none. Needs no lock: writers replace
    /// the file by rename, so a reader sees the old or the new version, never a mix.
    pub fn read(&self) -> Result<Option<Manifest>> {
        match self.read_bytes()? {
            None => Ok(None),
            Some(bytes) => self.parse(&bytes).map(Some),
        }
    }

    /// Read-modify-write under the exclusive lock. A missing file starts as an empty manifest;
    /// when `f` fails nothing is written; a file that does not parse is an error and is left
    /// as it was.
    /// Durable: synced to disk before the lock is released (see [`ManifestFile::update_live`]
    /// for what need not be).
    pub fn update<T>(&self, f: impl FnOnce(&mut Manifest) -> Result<T>) -> Result<T> {
        self.update_with(f, true)
    }

    /// [`ManifestFile::update`] for a change that only describes the running session: a
    /// story's claim, the story a worktree runs, an agent's process group. Replaced atomically
    /// like every write (another process, or a clean-up after this one crashed, reads the old
    /// version or the new one), but not synced to disk. What these fields say matters only
    /// while the session's process lives (a claim holds only while its session lock is held,
    /// process groups are looked up in `/proc`); a power loss ends that process, so losing
    /// them with it loses nothing, and the session's lasting entries (its worktrees, its
    /// status, parked worktrees) are written with [`ManifestFile::update`]. A parallel batch
    /// makes about four such changes per story; synced, each cost two syncs (about 15 ms on
    /// ext4) taken under the manifest lock, on the story's own path and blocking the other
    /// worktrees' changes. See [`crate::fsutil::replace_unsynced`] for what a power loss
    /// right after one can leave.
    pub fn update_live<T>(&self, f: impl FnOnce(&mut Manifest) -> Result<T>) -> Result<T> {
        self.update_with(f, false)
    }

    fn update_with<T>(
        &self,
        f: impl FnOnce(&mut Manifest) -> Result<T>,
        durable: bool,
    ) -> Result<T> {
        let _lock = self.lock()?;
        let mut manifest = match self.read_bytes()? {
            None => Manifest::default(),
            Some(bytes) => self.parse(&bytes)?,
        };
        let out = f(&mut manifest)?;
        self.write(&manifest, durable)?;
        Ok(out)
    }

    /// Under the lock, moves a manifest that does not parse aside to
    /// `manifest.json.bad-<unix time>` and returns where; `None` when there was nothing to repair.
    pub fn repair(&self) -> Result<Option<PathBuf>> {
        let _lock = self.lock()?;
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        if self.parse(&bytes).is_ok() {
            return Ok(None);
        }
        let stamp = super::now_unix();
        let mut backup = self.dir.join(format!("{MANIFEST_FILE}.bad-{stamp}"));
        let mut n = 1;
        // Never overwrite an earlier backup (two repairs in one second).
        while backup.symlink_metadata().is_ok() {
            backup = self.dir.join(format!("{MANIFEST_FILE}.bad-{stamp}-{n}"));
            n += 1;
        }
        std::fs::rename(&self.path, &backup).map_err(|e| {
            Error::io(
                format!(
                    "cannot move {} to {}",
                    self.path.display(),
                    backup.display()
                ),
                e,
            )
        })?;
        self.sync_dir()?;
        Ok(Some(backup))
    }

    /// Takes the exclusive lock, creating the folder and the lock file if needed; blocks while
    /// another process (or another open of the file in this one) holds it. Released on drop.
    fn lock(&self) -> Result<File> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("cannot create {}", self.dir.display()), e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            // A planted symlink must not make us create files elsewhere.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.lock_path)
            .map_err(|e| self.open_error(&self.lock_path, e))?;
        loop {
            match file.lock() {
                Ok(()) => return Ok(file),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot lock {}", self.lock_path.display()),
                        e,
                    ))
                }
            }
        }
    }

    /// The manifest's bytes, `None` if it does not exist. Refuses symlinks and non-files.
    fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        let opened = OpenOptions::new()
            .read(true)
            // O_NOFOLLOW refuses a symlink atomically; O_NONBLOCK keeps a planted FIFO from
            // hanging us before the file-type check below (no effect on regular files).
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&self.path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.open_error(&self.path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot read {}", self.path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::Setup {
                message: format!("{} is not a regular file", self.path.display()),
                hints: vec!["move it away; git-teleos only reads and writes a plain file".into()],
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("cannot read {}", self.path.display()), e))?;
        Ok(Some(bytes))
    }

    fn parse(&self, bytes: &[u8]) -> Result<Manifest> {
        let why = if bytes.iter().all(u8::is_ascii_whitespace) {
            "the file is empty".to_string()
        } else {
            match serde_json::from_slice::<Manifest>(bytes) {
                Ok(m) => return Ok(m),
                Err(e) => e.to_string(),
            }
        };
        Err(Error::Setup {
            message: format!(
                "cannot read the session manifest {}: {why}",
                self.path.display()
            ),
            hints: vec![
                "it was left as it was; fix it by hand, or run `git teleos clean-orphans --repair` \
                 to move it aside (as manifest.json.bad-<time>) and start a new one"
                    .into(),
            ],
        })
    }

    /// Writes a temporary file beside the manifest, syncs it, renames it over the manifest and
    /// syncs the folder, so a crash leaves the old file or the new one, never a torn one
    /// (without `durable`, no syncs: see [`ManifestFile::update_live`]).
    fn write(&self, manifest: &Manifest, durable: bool) -> Result<()> {
        let mut text = serde_json::to_string_pretty(manifest)
            .map_err(|e| Error::io("cannot serialise the manifest", io::Error::other(e)))?;
        text.push('\n');
        // rename() replaces a symlink itself rather than following it, but refuse one anyway so
        // that reads and writes agree (and a symlink someone put there is not silently dropped).
        if self
            .path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(self.symlink_error(&self.path));
        }
        if durable {
            crate::fsutil::write_atomic(&self.path, text.as_bytes())
        } else {
            crate::fsutil::replace_unsynced(&self.path, text.as_bytes())
        }
    }

    /// Makes a rename durable.
    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("cannot sync {}", self.dir.display()), e))
    }

    fn open_error(&self, path: &Path, e: io::Error) -> Error {
        // ELOOP is what O_NOFOLLOW reports for a symlink.
        if e.raw_os_error() == Some(libc::ELOOP) {
            self.symlink_error(path)
        } else {
            Error::io(format!("cannot open {}", path.display()), e)
        }
    }

    fn symlink_error(&self, path: &Path) -> Error {
        Error::Setup {
            message: format!(
                "{} is a symbolic link; refusing to follow it",
                path.display()
            ),
            hints: vec![
                "replace it with a regular file (or remove it) if you trust where it points".into(),
            ],
        }
    }
}
