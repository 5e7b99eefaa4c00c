//! What the manifest says and what is really there: every session with its liveness, its
//! worktrees, their unmerged commits and uncommitted changes, and worktrees in the worktrees
//! folder that no session claims. Reads only.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::git::{self, ObjectId, Repository};
use crate::manifest::schema::STATUS_INTERRUPTED;
use crate::manifest::{format_time, session_liveness, Liveness, ManifestFile, Session};

/// The state of the sessions of one worktrees folder.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub manifest: PathBuf,
    /// Whether the manifest file exists.
    pub manifest_exists: bool,
    pub sessions: Vec<SessionStatus>,
    /// Folders in the worktrees folder, or linked worktrees inside it, that no session claims.
    pub unclaimed_worktrees: Vec<Unclaimed>,
    /// Clean worktrees parked for reuse by the next batch (`--keep-worktrees`).
    pub idle_worktrees: Vec<PathBuf>,
    /// The parked worktrees with their disk use (0 and empty when none is parked).
    pub pool: PoolStatus,
}

/// Disk taken by the worktrees parked for reuse: the `st_blocks` of every file under each
/// worktree's folder and its admin folder (`<git dir>/worktrees/<name>`), as `du` counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolStatus {
    pub disk_bytes: u64,
    pub worktrees: Vec<PoolWorktree>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolWorktree {
    pub path: PathBuf,
    pub branch: String,
    pub disk_bytes: u64,
    /// When it was parked (UTC), if recorded.
    pub parked_at: Option<String>,
    pub idle_seconds: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub session_id: String,
    /// `alive`, `dead` (an orphan for clean-orphans) or `interrupted` (dead, kept for --resume).
    pub state: &'static str,
    pub reason: String,
    pub pid: Option<i32>,
    pub host: Option<String>,
    pub tool: Option<String>,
    pub started_at: Option<String>,
    pub age_seconds: Option<i64>,
    pub integration_branch: Option<String>,
    /// Commits on the integration branch not yet on the branch checked out here.
    pub integration_unmerged: Option<usize>,
    pub worktrees: Vec<WorktreeStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorktreeStatus {
    pub path: Option<String>,
    pub branch: Option<String>,
    /// The story an agent works on there now.
    pub story: Option<String>,
    pub exists: bool,
    /// Its commits not on the integration branch (or on HEAD when there is none).
    pub unmerged_commits: Option<usize>,
    /// Uncommitted paths (up to a few), `None` when it cannot be read.
    pub dirty: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unclaimed {
    pub path: PathBuf,
    /// Whether git knows it as a linked worktree of this repository.
    pub linked_worktree: bool,
    pub branch: Option<String>,
}

/// Reads the manifest in `worktrees_dir` (an unreadable one is an error naming it) and looks at
/// each session's worktrees and branches.
pub fn status(
    repo: &Repository,
    root: &Path,
    worktrees_dir: &Path,
    stale_hours: f64,
    now: i64,
) -> Result<StatusReport> {
    let manifest = ManifestFile::new(worktrees_dir);
    let read = manifest.read()?;
    let manifest_exists = read.is_some();
    let parked = read
        .as_ref()
        .map(crate::batch::pool::parked)
        .unwrap_or_default();
    let idle: Vec<PathBuf> = parked.iter().map(|p| p.path.clone()).collect();
    let pool_worktrees: Vec<PoolWorktree> = parked
        .into_iter()
        .map(|p| PoolWorktree {
            disk_bytes: crate::batch::pool::worktree_disk_bytes(&p.path),
            parked_at: p.parked_at.map(format_time),
            idle_seconds: p.parked_at.map(|t| now - t),
            path: p.path,
            branch: p.branch,
        })
        .collect();
    let pool = PoolStatus {
        disk_bytes: pool_worktrees.iter().map(|w| w.disk_bytes).sum(),
        worktrees: pool_worktrees,
    };
    let sessions = read.map(|m| m.sessions).unwrap_or_default();
    let head = git::head_commit_id(repo).ok().flatten();
    let mut out = Vec::new();
    for (sid, session) in &sessions {
        out.push(session_status(
            repo,
            root,
            worktrees_dir,
            (sid, session),
            head,
            (stale_hours, now),
        ));
    }
    let claimed: Vec<PathBuf> = sessions
        .values()
        .flat_map(|s| s.worktrees.iter().filter_map(|w| w.path.as_deref()))
        .map(|p| root.join(p))
        .chain(idle.iter().cloned())
        .collect();
    Ok(StatusReport {
        manifest: manifest.path().to_path_buf(),
        manifest_exists,
        sessions: out,
        unclaimed_worktrees: unclaimed(repo, worktrees_dir, &claimed),
        idle_worktrees: idle,
        pool,
    })
}

fn session_status(
    repo: &Repository,
    root: &Path,
    dir: &Path,
    (sid, session): (&str, &Session),
    head: Option<ObjectId>,
    (stale_hours, now): (f64, i64),
) -> SessionStatus {
    let (state, reason) = match session_liveness(dir, sid, session, stale_hours, now) {
        Liveness::Alive(why) => ("alive", why.to_string()),
        Liveness::Dead(why) if session.status.as_deref() == Some(STATUS_INTERRUPTED) => {
            ("interrupted", why)
        }
        Liveness::Dead(why) => ("dead", why),
    };
    let tip = |name: &str| {
        let full = if name.starts_with("refs/") {
            name.to_string()
        } else {
            format!("refs/heads/{name}")
        };
        git::resolve_ref(repo, &full).ok().flatten()
    };
    let integration_tip = session.integration_branch.as_deref().and_then(tip);
    let unmerged = |t: ObjectId, base: Option<ObjectId>| {
        git::count_unreachable_from(repo, t, &base.into_iter().collect::<Vec<_>>()).ok()
    };
    let worktrees = session
        .worktrees
        .iter()
        .map(|w| {
            let path = w.path.as_deref().map(|p| root.join(p));
            let exists = path.as_deref().is_some_and(Path::exists);
            let dirty = path
                .as_deref()
                .filter(|_| exists)
                .and_then(|p| gix::open(p).ok())
                .and_then(|wt| git::dirty_paths(&wt).ok());
            WorktreeStatus {
                path: w.path.clone(),
                branch: w.branch.clone(),
                story: w.story.clone(),
                exists,
                unmerged_commits: w
                    .branch
                    .as_deref()
                    .and_then(tip)
                    .and_then(|t| unmerged(t, integration_tip.or(head))),
                dirty,
            }
        })
        .collect();
    SessionStatus {
        session_id: sid.to_string(),
        state,
        reason,
        pid: session.pid,
        host: session.host.clone(),
        tool: session.tool.clone(),
        started_at: session.started_at_unix().map(format_time),
        age_seconds: session.started_at_unix().map(|t| now - t),
        integration_branch: session.integration_branch.clone(),
        integration_unmerged: integration_tip.and_then(|t| unmerged(t, head)),
        worktrees,
    }
}

/// Folders directly in the worktrees folder and linked worktrees inside it that no session
/// claims.
fn unclaimed(repo: &Repository, dir: &Path, claimed: &[PathBuf]) -> Vec<Unclaimed> {
    let linked = git::list_worktrees(repo).unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    for w in &linked {
        if git::is_inside(&w.path, dir)
            && !candidates.iter().any(|c| git::worktree_path_eq(c, &w.path))
        {
            candidates.push(w.path.clone());
        }
    }
    candidates.sort();
    candidates
        .into_iter()
        .filter(|c| !claimed.iter().any(|p| git::worktree_path_eq(p, c)))
        .map(|path| {
            let known = linked
                .iter()
                .find(|w| git::worktree_path_eq(&w.path, &path));
            Unclaimed {
                linked_worktree: known.is_some(),
                branch: known
                    .and_then(|w| w.branch.as_deref())
                    .map(|b| b.trim_start_matches("refs/heads/").to_string()),
                path,
            }
        })
        .collect()
}
