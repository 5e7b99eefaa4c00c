//! What a batch may create on disk before its first agent answers, remembered so that a batch
//! that fails with a setup error (an agent that is not authenticated) leaves the repository
//! byte-for-byte as it was: the manifest, its lock, the exclude file, the worktrees folder, the
//! logs and `.git/teleos`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Files and folders as they were before the batch.
pub struct Footprint {
    /// Each file with its content then (`None`: it did not exist).
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// Folders that did not exist, deepest last as given; removed when empty again.
    new_dirs: Vec<PathBuf>,
    /// Folders that did not exist and hold only what the batch wrote (its logs, records).
    new_own_dirs: Vec<PathBuf>,
}

impl Footprint {
    /// `files`: their content is kept; `dirs`: removed again if they did not exist and are
    /// empty; `own_dirs`: removed with everything in them if they did not exist.
    pub fn capture(files: &[PathBuf], dirs: &[PathBuf], own_dirs: &[PathBuf]) -> Footprint {
        let missing = |p: &&PathBuf| p.symlink_metadata().is_err();
        Footprint {
            files: files
                .iter()
                .map(|p| (p.clone(), std::fs::read(p).ok()))
                .collect(),
            new_dirs: dirs.iter().filter(missing).cloned().collect(),
            new_own_dirs: own_dirs.iter().filter(missing).cloned().collect(),
        }
    }

    /// `root` and every folder between it and `dir` (exclusive of `root`), deepest first.
    pub fn dirs_up_to(root: &Path, dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut d = dir;
        while d != root && d.starts_with(root) {
            out.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        out
    }

    /// Whether putting `path` back cannot undo someone else's change: a JSON file (the
    /// manifest, shared with other sessions) goes back only when it means what it meant
    /// before, or holds nothing at all when it did not exist; a lock file goes only when no
    /// one holds it.
    fn only_ours_changed(&self, path: &Path, before: Option<&[u8]>, now: Option<&[u8]>) -> bool {
        let json = |b: Option<&[u8]>| b.and_then(|b| serde_json::from_slice::<Value>(b).ok());
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => match (json(before), json(now)) {
                (Some(a), Some(b)) => a == b,
                (None, Some(Value::Object(m))) if before.is_none() => m
                    .values()
                    .all(|v| v.as_object().is_some_and(|o| o.is_empty())),
                _ => false,
            },
            Some("lock") => {
                before.is_none()
                    && std::fs::File::open(path)
                        .map(|f| f.try_lock().is_ok())
                        .unwrap_or(false)
            }
            _ => true,
        }
    }

    /// Put everything back; returns what could not be (for a warning).
    pub fn restore(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (path, before) in &self.files {
            let now = std::fs::read(path).ok();
            if now == *before || !self.only_ours_changed(path, before.as_deref(), now.as_deref()) {
                continue;
            }
            let result = match before {
                Some(content) => {
                    crate::fsutil::write_atomic(path, content).map_err(|e| e.to_string())
                }
                None => std::fs::remove_file(path).map_err(|e| e.to_string()),
            };
            if let Err(e) = result {
                problems.push(format!("{}: {e}", path.display()));
            }
        }
        for dir in &self.new_own_dirs {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    problems.push(format!("{}: {e}", dir.display()));
                }
            }
        }
        // Only empty folders go: anything left in one is not ours to delete.
        for dir in &self.new_dirs {
            let _ = std::fs::remove_dir(dir);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_files_and_removes_only_what_it_created() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        std::fs::write(root.join("kept"), "before").expect("write");
        let created = root.join("a/b");
        let own = root.join("logs");
        let fp = Footprint::capture(
            &[root.join("kept"), root.join("a/b/new")],
            &Footprint::dirs_up_to(root, &created),
            std::slice::from_ref(&own),
        );
        std::fs::create_dir_all(&created).expect("mkdir");
        std::fs::create_dir_all(own.join("x")).expect("mkdir");
        std::fs::write(own.join("x/log"), "log").expect("write");
        std::fs::write(root.join("kept"), "after").expect("write");
        std::fs::write(created.join("new"), "new").expect("write");
        assert!(fp.restore().is_empty());
        assert_eq!(
            std::fs::read_to_string(root.join("kept")).expect("read"),
            "before"
        );
        assert!(!root.join("a").exists() && !own.exists());

        // A shared JSON file someone else changed meanwhile is left as it is now.
        let manifest = root.join("manifest.json");
        std::fs::write(&manifest, "{\"sessions\": {}}").expect("write");
        let fp = Footprint::capture(std::slice::from_ref(&manifest), &[], &[]);
        std::fs::write(&manifest, "{\"sessions\":{}}").expect("write");
        assert!(fp.restore().is_empty());
        assert_eq!(
            std::fs::read_to_string(&manifest).expect("read"),
            "{\"sessions\": {}}"
        );
        std::fs::write(&manifest, "{\"sessions\":{\"abc123\":{}}}").expect("write");
        assert!(fp.restore().is_empty());
        assert!(std::fs::read_to_string(&manifest)
            .expect("read")
            .contains("abc123"));

        // A folder holding something else is left alone.
        std::fs::create_dir_all(&created).expect("mkdir");
        let fp = Footprint::capture(&[], &[], &[]);
        std::fs::write(created.join("user-file"), "x").expect("write");
        assert!(fp.restore().is_empty());
        assert!(created.join("user-file").exists());
    }
}
