//! `git teleos clean-orphans`: clean sessions whose process is gone, keeping their work on
//! rescue refs (README, "Orphaned sessions").

use std::io::Write;

use crate::batch::orphans::{self, Action, CleanOptions, CleanReport};
use crate::error::{Error, ExitCode};
use crate::manifest::ManifestFile;
use crate::settings::Overrides;

use super::{out_err, Context, GlobalArgs};

/// Clean up orphaned sessions: keep their work on refs, then remove their worktrees and branches.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Work that is merged nowhere (commits on the session's branches, \
uncommitted files in its worktrees) is kept under refs/teleos/rescue/<sid>/ before anything is \
removed. Only folders inside the worktrees folder that git knows as worktrees of this repository, \
and only branches named worktree/teleos-<sid>-<n> or integration-<sid>, are ever removed. \
Live sessions are never touched."
)]
pub struct Args {
    /// Show what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Hours after which another tool's session with a dead pid (or an interrupted session of
    /// ours) is an orphan; 0 means no grace period [config: teleos.staleHours; default 4].
    #[arg(long, value_name = "H")]
    pub stale_hours: Option<f64>,
    /// Move a manifest that cannot be read aside (manifest.json.bad-<time>) and start afresh.
    #[arg(long)]
    pub repair: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also remove every worktree kept for reuse (--keep-worktrees), not only those idle longer
    /// than teleos.poolIdleHours; anything found in them is kept on refs first.
    #[arg(long)]
    pub drop_idle: bool,
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let overrides = Overrides {
        stale_hours: args.stale_hours,
        ..Overrides::default()
    };
    let ctx = Context::open(global, &overrides)?;
    let mut opts = CleanOptions::new(&ctx.main_root, &ctx.settings);
    opts.dry_run = args.dry_run;
    let mut err = std::io::stderr();
    if args.repair && !args.dry_run {
        if let Some(backup) = ManifestFile::new(&opts.worktrees_dir).repair()? {
            let _ = writeln!(
                err,
                "The manifest could not be read; it was moved to {}",
                backup.display()
            );
        }
    }
    let mut report = orphans::clean_orphans(&ctx.repo, &opts)?;
    if args.drop_idle {
        let manifest = ManifestFile::new(&opts.worktrees_dir);
        let (dropped, errors) = crate::batch::pool::drop_idle(
            &ctx.repo,
            &manifest,
            &opts.worktrees_dir,
            args.dry_run,
            None,
            opts.now,
        )?;
        report.dropped_idle.extend(dropped);
        report.errors.extend(errors);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for d in &report.dropped_idle {
        let kept = if d.rescued.is_empty() {
            String::new()
        } else {
            format!(" (what it held is kept on {})", d.rescued.join(", "))
        };
        let _ = writeln!(err, "{verb} idle worktree {}{kept}", d.path.display());
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::usage(format!("cannot encode JSON: {e}")))?;
        writeln!(out, "{text}").map_err(out_err)?;
    } else if global.quiet {
        // For hooks: a line per cleaned session, on stderr, and nothing when nothing happened.
        render_quiet(&mut err, &report);
    } else {
        render(&mut out, &report).map_err(out_err)?;
    }
    Ok(if report.has_errors() {
        ExitCode::INCOMPLETE
    } else {
        ExitCode::SUCCESS
    })
}

fn render_quiet(w: &mut dyn Write, report: &CleanReport) {
    for s in report.cleaned() {
        let kept: Vec<&str> = s.rescued.iter().map(|r| r.ref_name.as_str()).collect();
        let kept = if kept.is_empty() {
            "nothing unmerged".to_string()
        } else {
            format!("work kept on {}", kept.join(", "))
        };
        let _ = writeln!(
            w,
            "git-teleos: cleaned orphaned session {} ({kept})",
            s.session_id
        );
        for e in &s.errors {
            let _ = writeln!(w, "git-teleos: error: {e}");
        }
    }
    for e in &report.errors {
        let _ = writeln!(w, "git-teleos: error: {e}");
    }
}

/// The human report: per session what was kept, removed, refused, and how to get work back.
pub fn render(w: &mut dyn Write, report: &CleanReport) -> std::io::Result<()> {
    let would = if report.dry_run { "would " } else { "" };
    if report.sessions.is_empty() {
        writeln!(w, "No sessions in {}.", report.manifest.display())?;
    }
    for s in &report.sessions {
        let what = match s.action {
            Action::Skipped => "left alone",
            Action::Planned => "orphaned; dry run, nothing changed",
            Action::Cleaned => "orphaned; cleaned",
            Action::Incomplete => "orphaned; cleaned only in part (kept in the manifest)",
        };
        writeln!(w, "Session {}: {} — {what}", s.session_id, s.reason)?;
        for r in &s.rescued {
            writeln!(w, "  {would}keep {}  ({})", r.ref_name, r.what)?;
        }
        for p in &s.removed_worktrees {
            writeln!(w, "  {would}remove worktree {}", p.display())?;
        }
        for b in &s.deleted_branches {
            writeln!(w, "  {would}delete branch {b}")?;
        }
        for g in &s.stopped_process_groups {
            writeln!(w, "  {would}stop agent process group {g}")?;
        }
        for r in &s.refused {
            writeln!(w, "  refused: {r}")?;
        }
        for e in &s.errors {
            writeln!(w, "  error: {e}")?;
        }
    }
    for id in &report.pruned_worktrees {
        writeln!(
            w,
            "{would}prune worktree admin folder {id} (its checkout is gone)"
        )?;
    }
    for name in &report.removed_trash {
        writeln!(
            w,
            "{would}delete {name} (a clean worktree whose deletion was cut short)"
        )?;
    }
    for e in &report.errors {
        writeln!(w, "error: {e}")?;
    }
    if report.sessions.iter().any(|s| !s.rescued.is_empty()) {
        writeln!(
            w,
            "\nGet work back: git log <ref>, then git switch -c <new-branch> <ref> \
             (an uncommitted snapshot is one commit on top of its worktree's HEAD).\n\
             List everything kept: git for-each-ref {}/",
            crate::batch::names::LEGACY_PREFIX
        )?;
    }
    Ok(())
}
