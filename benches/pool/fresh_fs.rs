//! A fresh filesystem per benchmark run, so that no run inherits another's disk state; used by
//! `benches/e2e.rs` and `benches/pool.rs` (each includes it with `#[path]`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn remove_dir(p: &Path) {
    if p.exists() {
        let _ = Command::new("rm").arg("-rf").arg(p).status();
    }
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn warn(msg: &str) {
    eprintln!("bench: WARNING: {msg}");
}

/// How a run gets a filesystem of its own, decided once by [`FsKind::probe`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum FsKind {
    /// A new ext4 image, loop-mounted (needs root): the same kind of disk filesystem users have.
    #[default]
    LoopExt4,
    /// A new tmpfs mount (needs the right to mount, not a loop device): isolated, but in memory.
    Tmpfs,
    /// Neither could be mounted: a new folder on the shared disk, so runs may inherit each
    /// other's disk state. Said in the output and in BENCHMARKS.md.
    Folder,
}

impl FsKind {
    /// Try each kind once, best first, in a scratch mount point under `root`.
    pub fn probe(root: &Path) -> FsKind {
        if std::env::var("E2E_FS").as_deref() == Ok("folder") {
            return FsKind::Folder;
        }
        for kind in [FsKind::LoopExt4, FsKind::Tmpfs] {
            let mnt = root.join("probe");
            if let Some(fresh) = FreshFs::mount(kind, root, &mnt) {
                drop(fresh);
                return kind;
            }
        }
        warn("cannot mount a filesystem (not root?): runs share one disk; figures may be biased");
        FsKind::Folder
    }

    pub fn describe(self) -> &'static str {
        match self {
            FsKind::LoopExt4 => {
                "a new loop-mounted ext4 image (made, mounted, unmounted and deleted per run)"
            }
            FsKind::Tmpfs => "a new tmpfs mount per run (loop devices were not available)",
            FsKind::Folder => {
                "a new folder on the shared disk (**not isolated**: mounting was not allowed)"
            }
        }
    }
}

/// A filesystem made for one run; dropping it unmounts and deletes it.
pub struct FreshFs {
    kind: FsKind,
    mnt: PathBuf,
    image: Option<PathBuf>,
}

impl FreshFs {
    pub fn new(kind: FsKind, root: &Path, mnt: &Path) -> FreshFs {
        FreshFs::mount(kind, root, mnt)
            .unwrap_or_else(|| panic!("could not make a fresh filesystem at {}", mnt.display()))
    }

    /// A fresh filesystem of this kind at `mnt`, or `None` if none can be made here.
    pub fn mount(kind: FsKind, root: &Path, mnt: &Path) -> Option<FreshFs> {
        remove_dir(mnt);
        fs::create_dir_all(mnt).ok()?;
        let quiet = |c: &mut Command| {
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let image = match kind {
            FsKind::Folder => None,
            FsKind::Tmpfs => {
                let ok = quiet(
                    Command::new("mount")
                        .args(["-t", "tmpfs", "-o", "size=4g", "tmpfs"])
                        .arg(mnt),
                );
                if !ok {
                    return None;
                }
                None
            }
            FsKind::LoopExt4 => {
                let image = root.join("run.img");
                let _ = fs::remove_file(&image);
                // Sparse, so only what a run writes takes disk. Inode tables and the journal
                // are initialised now, not lazily by a kernel thread writing during the run.
                let ok = quiet(Command::new("truncate").args(["-s", "4G"]).arg(&image))
                    && quiet(
                        Command::new("mkfs.ext4")
                            .args(["-q", "-F", "-i", "8192", "-E"])
                            .arg("lazy_itable_init=0,lazy_journal_init=0")
                            .arg(&image),
                    )
                    && quiet(
                        Command::new("mount")
                            .args(["-o", "loop"])
                            .arg(&image)
                            .arg(mnt),
                    );
                if !ok {
                    let _ = fs::remove_file(&image);
                    return None;
                }
                Some(image)
            }
        };
        Some(FreshFs {
            kind,
            mnt: mnt.to_path_buf(),
            image,
        })
    }
}

impl Drop for FreshFs {
    fn drop(&mut self) {
        if self.kind != FsKind::Folder {
            sync();
            let ok = Command::new("umount")
                .arg(&self.mnt)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Something still holds a file there; a lazy unmount still frees it for reuse.
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        if let Some(image) = &self.image {
            let _ = fs::remove_file(image);
        }
        remove_dir(&self.mnt);
    }
}
