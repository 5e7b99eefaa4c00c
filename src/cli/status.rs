//! `git teleos status`: the sessions in the manifest and what is on disk.

use std::io::Write;

use crate::batch::status::{self, StatusReport};
use crate::error::Error;
use crate::settings::Overrides;

use super::{out_err, Context, GlobalArgs};

/// Show the parallel sessions: alive, dead or interrupted, their worktrees and unmerged work.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the sessions as JSON.
    #[arg(long)]
    pub json: bool,
    /// Hours after which another tool's session with a dead pid counts as dead; 0 means no grace
    /// period [config: teleos.staleHours; default 4].
    #[arg(long, value_name = "H")]
    pub stale_hours: Option<f64>,
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let overrides = Overrides {
        stale_hours: args.stale_hours,
        ..Overrides::default()
    };
    let ctx = Context::open(global, &overrides)?;
    let report = status::status(
        &ctx.repo,
        &ctx.main_root,
        &ctx.worktrees_dir(),
        ctx.settings.stale_hours,
        crate::manifest::now_unix(),
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::usage(format!("cannot encode JSON: {e}")))?;
        writeln!(out, "{text}").map_err(out_err)?;
    } else {
        render(&mut out, &report).map_err(out_err)?;
    }
    Ok(0)
}

fn plural(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s ago"),
        s if s < 2 * 3600 => format!("{} min ago", s / 60),
        s => format!("{:.1} h ago", s as f64 / 3600.0),
    }
}

/// Disk use as `du -h` would say it, in powers of 1024.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn render(w: &mut dyn Write, r: &StatusReport) -> std::io::Result<()> {
    if r.sessions.is_empty() {
        writeln!(w, "No sessions ({}).", r.manifest.display())?;
    }
    for s in &r.sessions {
        let mut head = format!("Session {}  {} ({})", s.session_id, s.state, s.reason);
        if let Some(pid) = s.pid {
            head.push_str(&format!("  pid {pid}"));
        }
        if let (Some(at), Some(secs)) = (&s.started_at, s.age_seconds) {
            head.push_str(&format!("  started {at} ({})", age(secs)));
        }
        if let Some(tool) = s.tool.as_deref().filter(|t| *t != "git-teleos") {
            head.push_str(&format!("  written by {tool}"));
        }
        writeln!(w, "{head}")?;
        if let Some(b) = &s.integration_branch {
            let extra = match s.integration_unmerged {
                Some(n) => format!(" ({} not on your branch)", plural(n, "commit")),
                None => " (branch missing)".to_string(),
            };
            writeln!(w, "  integration {b}{extra}")?;
        }
        for wt in &s.worktrees {
            let mut line = format!(
                "  worktree {}",
                wt.path.as_deref().unwrap_or("(no path recorded)")
            );
            if let Some(b) = &wt.branch {
                line.push_str(&format!("  branch {b}"));
            }
            if let Some(story) = &wt.story {
                line.push_str(&format!("  story {story}"));
            }
            if let Some(n) = wt.unmerged_commits {
                line.push_str(&format!("  {} unmerged", plural(n, "commit")));
            }
            if !wt.exists && s.state == "alive" {
                // Worktrees are made on demand and given back when their slot has nothing
                // left to do, so a live session's missing folder is normal, not a loss.
                line.push_str("  (not in use)");
            } else if !wt.exists {
                line.push_str("  (folder gone)");
            } else {
                match &wt.dirty {
                    Some(d) if d.is_empty() => line.push_str("  clean"),
                    Some(d) => line.push_str(&format!("  uncommitted: {}", d.join(", "))),
                    None => line.push_str("  (unreadable)"),
                }
            }
            writeln!(w, "{line}")?;
        }
    }
    if !r.pool.worktrees.is_empty() {
        writeln!(
            w,
            "Kept for reuse by the next batch (--keep-worktrees): {} on disk",
            bytes(r.pool.disk_bytes)
        )?;
        for p in &r.pool.worktrees {
            let idle = p
                .idle_seconds
                .map(|s| format!("  parked {}", age(s)))
                .unwrap_or_default();
            writeln!(w, "  {}  {}{idle}", p.path.display(), bytes(p.disk_bytes))?;
        }
    }
    if !r.unclaimed_worktrees.is_empty() {
        writeln!(w, "Not claimed by any session:")?;
        for u in &r.unclaimed_worktrees {
            let what = match (&u.linked_worktree, &u.branch) {
                (true, Some(b)) => format!("linked worktree on {b}"),
                (true, None) => "linked worktree (detached)".to_string(),
                (false, _) => "folder git does not know as a worktree".to_string(),
            };
            writeln!(w, "  {}  {what}", u.path.display())?;
        }
    }
    Ok(())
}
