//! `git teleos scan`: phase 1 — which stories are clean, closeable, or need the full pipeline.

use std::path::PathBuf;

use crate::error::Error;
use crate::settings::Overrides;
use crate::stories::{self, ScanOptions};

use super::{out_err, Context, GlobalArgs};

/// List stories and how close each is to done (phase 1: SCAN).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scan: ScanFlags,
    /// Print the scan results as JSON (the source workflow's scan_results shape).
    #[arg(long)]
    pub json: bool,
}

/// Flags that decide what a scan finds; shared by every command that scans.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScanFlags {
    /// Sprint-artifacts folder holding the stories, instead of discovering them [config: teleos.sprintArtifacts].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Largest unchecked fraction for a story to be closeable, 0..1 [config: teleos.closeableThreshold; default 0.30].
    #[arg(long, value_name = "FRACTION")]
    pub threshold: Option<f64>,
    /// Count only tasks under task headings [config: teleos.taskSections].
    #[arg(long)]
    pub task_sections: bool,
    /// Also scan per-epic subfolders [config: teleos.recursive].
    #[arg(long)]
    pub recursive: bool,
}

impl ScanFlags {
    /// The flags as overrides; a relative `--artifacts` is taken from where the user stands.
    pub fn overrides(&self, global: &GlobalArgs) -> Result<Overrides, Error> {
        let artifacts = match &self.artifacts {
            Some(p) if p.is_relative() => {
                let base = match &global.dir {
                    Some(d) => d.clone(),
                    None => {
                        std::env::current_dir().map_err(|e| Error::io("current directory", e))?
                    }
                };
                Some(base.join(p))
            }
            other => other.clone(),
        };
        Ok(Overrides {
            sprint_artifacts: artifacts,
            closeable_threshold: self.threshold,
            task_sections: self.task_sections.then_some(true),
            recursive: self.recursive.then_some(true),
            ..Overrides::default()
        })
    }
}

/// Scan with the resolved settings.
pub fn scan_stories(ctx: &Context) -> Result<stories::ScanResult, Error> {
    let s = &ctx.settings;
    let mut opts = ScanOptions::new(ctx.root.clone());
    opts.artifacts_dir = s.sprint_artifacts.clone();
    opts.recursive = s.recursive;
    opts.exclude_patterns
        .extend(s.exclude_patterns.iter().cloned());
    opts.threshold = s.closeable_threshold;
    opts.parse.task_sections = s.task_sections.clone();
    opts.parse.human_patterns = s.human_patterns.clone();
    stories::scan(&opts)
}

pub fn run(args: Args, global: &GlobalArgs) -> Result<u8, Error> {
    let ctx = Context::open(global, &args.scan.overrides(global)?)?;
    let result = scan_stories(&ctx)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = crate::report::scan::to_json(&result, ctx.settings.closeable_threshold)?;
        super::print_json(&mut out, &json)?;
    } else {
        crate::report::scan::render(&mut out, &result, ctx.settings.closeable_threshold)
            .map_err(out_err)?;
    }
    Ok(0)
}
