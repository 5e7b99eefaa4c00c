//! The integration tests: one test binary, so that the crate and its dependencies are linked
//! once rather than once per file. Each module was a test binary of its own before.
//!
//! Run one module with `cargo test --test it <module>::`, for example `cargo test --test it
//! scan::`. Tests that must change process-wide state (environment variables) run their body
//! in a child process of this binary (`common::in_child_process`), never in this one.

mod common;

mod agent_clis;
mod agent_runner;
mod cleanup;
mod close;
mod crash;
mod discover_wider;
mod discovery;
mod gate_bisect;
mod gates;
mod git_config;
mod git_ops;
mod heading_tasks;
mod hostile_input;
mod kubernetes;
mod man;
// The file wraps its tests in `mod manifest` (so that `cargo test manifest` selects them when
// run alone); kept as it is so that work on it merges.
#[allow(clippy::module_inception)]
mod manifest;
mod on_demand;
mod parallel;
mod pool;
mod remote;
mod report;
mod resources;
mod scan;
mod scan_golden;
mod signing;
mod slurm;
mod tracker;
mod trust;
mod user_checkout;
mod watch;

/// A test file added as `tests/<name>.rs` would build and link a binary of its own, and one
/// added under `tests/it/` without a `mod` line here would never run.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&root),
        ["it"],
        "tests/ holds only the folder of this binary: move test files under tests/it/"
    );
    let main = std::fs::read_to_string(root.join("it/main.rs")).unwrap();
    for name in names(&root.join("it")) {
        let module = name.strip_suffix(".rs").unwrap_or(&name);
        if module != "main" {
            assert!(
                main.contains(&format!("\nmod {module};\n")),
                "tests/it/{name} is not declared in tests/it/main.rs: add `mod {module};`"
            );
        }
    }
}
