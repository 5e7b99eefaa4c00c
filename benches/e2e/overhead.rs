//! Per-story overhead, read from the batch record git-teleos writes (`.git/teleos/last-batch.json`,
//! the same timeline the HTML report draws): in each worktree slot (lane), the time from one
//! agent's exit to the next agent's start. No timer of the benchmark's own is involved: the
//! figures are the batch's own phase records.
//!
//! Each gap is split into what the record names: `verify` (agent exit to the start of the
//! merge phase: verification, gates), `merge` (the merge phase: leftovers, the in-memory merge),
//! and `setup` (the next story's setup phase: claiming it, bringing the worktree to the
//! integration tip). A wait of the rate governor before an agent start is not overhead: the next
//! start is taken after it.

use std::fs;
use std::path::Path;

use super::{keys, median, verdict, Bench, Config, OVERHEAD_END, OVERHEAD_START};

/// Gaps of one run, in milliseconds, one entry per pair of consecutive stories in a lane.
#[derive(Default, Clone)]
pub struct Gaps {
    pub total: Vec<f64>,
    pub verify: Vec<f64>,
    pub merge: Vec<f64>,
    pub setup: Vec<f64>,
}

struct Span {
    start: i64,
    end: i64,
}

/// One attempt as the gaps need it.
struct Run {
    lane: u64,
    /// When the agent process could start (after any governor wait).
    agent_start: i64,
    agent_end: i64,
    merge: Option<Span>,
    setup: Option<Span>,
}

fn span(p: &serde_json::Value) -> Option<Span> {
    Some(Span {
        start: p.get("start")?.as_i64()?,
        end: p.get("end")?.as_i64()?,
    })
}

/// The gaps in the batch record of the repository at `repo`; `None` if it cannot be read.
pub fn from_repo(repo: &Path) -> Option<Gaps> {
    let text = fs::read_to_string(repo.join(".git/teleos/last-batch.json")).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut runs = Vec::new();
    for story in record.get("stories")?.as_array()? {
        let Some(timeline) = story.get("timeline").and_then(|t| t.as_array()) else {
            continue;
        };
        for attempt in timeline {
            let Some(lane) = attempt.get("lane").and_then(|l| l.as_u64()) else {
                continue;
            };
            let phases = attempt
                .get("phases")
                .and_then(|p| p.as_array())
                .cloned()
                .unwrap_or_default();
            let named = |name: &str| {
                phases
                    .iter()
                    .filter(|p| p.get("phase").and_then(|n| n.as_str()) == Some(name))
                    .filter_map(span)
                    .collect::<Vec<_>>()
            };
            let Some(agent) = named("agent").into_iter().next() else {
                continue;
            };
            let waited_until = named("rate_limit_wait")
                .iter()
                .map(|w| w.end)
                .max()
                .unwrap_or(agent.start);
            runs.push(Run {
                lane,
                agent_start: agent.start.max(waited_until),
                agent_end: agent.end,
                merge: named("merge").into_iter().next(),
                setup: named("setup").into_iter().next(),
            });
        }
    }
    runs.sort_by_key(|r| (r.lane, r.agent_start));
    let mut gaps = Gaps::default();
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.lane != b.lane {
            continue;
        }
        gaps.total.push((b.agent_start - a.agent_end) as f64);
        if let Some(m) = &a.merge {
            gaps.verify.push((m.start - a.agent_end) as f64);
            gaps.merge.push((m.end - m.start) as f64);
        }
        if let Some(s) = &b.setup {
            gaps.setup.push((s.end - s.start) as f64);
        }
    }
    Some(gaps)
}

/// Workload O: the same 24 instant stories as A, at each size of `E2E_O_FILES`, git-teleos
/// only (the seed has no such figure to compare), sizes alternating round by round.
pub struct WorkloadO {
    /// Per size: every run's gaps.
    pub sizes: Vec<(usize, Vec<Gaps>)>,
    pub failures: Vec<String>,
}

pub fn workload_o(cfg: &Config, bench: &Bench) -> WorkloadO {
    let keys = keys("o", 24);
    bench.install_agent("* 0\n");
    let fixtures: Vec<(usize, std::path::PathBuf)> = cfg
        .o_files
        .iter()
        .map(|&n| {
            println!("O: building the fixture ({n} files, 24 stories)");
            (n, bench.build_fixture(&format!("fixture-o-{n}"), n, &keys))
        })
        .collect();
    let mut out = WorkloadO {
        sizes: cfg.o_files.iter().map(|&n| (n, Vec::new())).collect(),
        failures: Vec::new(),
    };
    for round in 0..cfg.rounds {
        let mut order: Vec<usize> = (0..fixtures.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (n, fixture) = &fixtures[i];
            let (fresh, repo) = bench.fresh_copy(fixture);
            let r = bench.run_teleos(&repo);
            println!(
                "O round {}, {n} files: git-teleos {:.2} s; per-story overhead median {:.0} ms \
                 over {} gaps (verify {:.0}, merge {:.0}, next setup {:.0})",
                round + 1,
                r.secs,
                median(&r.gaps.total),
                r.gaps.total.len(),
                median(&r.gaps.verify),
                median(&r.gaps.merge),
                median(&r.gaps.setup),
            );
            if !bench.verify("teleos", &repo, &keys) {
                out.failures
                    .push(format!("O round {} {n} files", round + 1));
            }
            drop(fresh);
            out.sizes[i].1.push(r.gaps);
        }
    }
    out
}

fn ms_list(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl WorkloadO {
    pub fn markdown(
        &self,
        cfg: &Config,
        bench: &Bench,
        load_start: &str,
        load_end: &str,
    ) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let sizes: Vec<String> = cfg.o_files.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(s, "{OVERHEAD_START}");
        let _ = writeln!(
            s,
            "## Per-story overhead: agent exit to the next agent start in the same worktree\n"
        );
        let _ = writeln!(
            s,
            "Generated by `benches/e2e.rs` (workload O; `benches/e2e/overhead.rs`); no figure \
             below is typed by hand. Reproduce with:\n\n```sh\nE2E_WORKLOADS=O E2E_O_FILES={} \
             E2E_ROUNDS={} cargo bench --bench e2e\n```\n",
            sizes.join(","),
            cfg.rounds
        );
        let _ = writeln!(
            s,
            "The run of workload A (24 instant stories, `close --parallel 3 --all`, the stand-in \
             `claude`) on repositories of each size, every run on {}. The figures are the batch's \
             own timeline (`.git/teleos/last-batch.json`): in each worktree, from one agent \
             phase's end to the next one's start (21 gaps per run: 24 stories in 3 worktrees). \
             It splits into *verify* (agent exit to the merge phase: verification), *merge* (the \
             merge phase: leftovers, the in-memory merge) and *setup* (the next story: claim, \
             bringing the worktree to the integration tip). A run's figure is the median of its \
             gaps; the table gives the median over runs.\n",
            bench.fs.describe()
        );
        let _ = writeln!(
            s,
            "- load average (1/5/15 min) at start: {load_start}; at end: {load_end}\n"
        );
        let _ = writeln!(
            s,
            "| files | overhead per story (median) | verify | merge | next setup | runs (median gap each, ms) |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
        let mut medians = Vec::new();
        for (n, runs) in &self.sizes {
            let per_run = |f: fn(&Gaps) -> &Vec<f64>| -> Vec<f64> {
                runs.iter().map(|g| median(f(g))).collect()
            };
            let total = per_run(|g| &g.total);
            let m = median(&total);
            medians.push((*n, m));
            let _ = writeln!(
                s,
                "| {n} | {m:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} |",
                median(&per_run(|g| &g.verify)),
                median(&per_run(|g| &g.merge)),
                median(&per_run(|g| &g.setup)),
                ms_list(&total)
            );
        }
        if let (Some(small), Some(large)) = (medians.first(), medians.last()) {
            if large.0 > small.0 {
                let ratio = large.1 / small.1;
                let _ = writeln!(
                    s,
                    "\nAt {} files the overhead is **{ratio:.2} ×** that at {} files ({} × the \
                     files); target ≤ 2 ×: {}.",
                    large.0,
                    small.0,
                    large.0 / small.0.max(1),
                    verdict(ratio <= 2.0)
                );
            }
        }
        if self.failures.is_empty() {
            let _ = writeln!(
                s,
                "\n- correctness: every run checked, all stories on `main`, nothing left behind"
            );
        } else {
            let _ = writeln!(
                s,
                "\n- correctness: **check failed** in {}",
                self.failures.join("; ")
            );
        }
        let _ = writeln!(s, "\n{OVERHEAD_END}");
        s
    }
}
