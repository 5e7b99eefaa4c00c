//! `scan --json` on a project of real-looking stories is byte-identical to a golden output.
//!
//! The stories (`tests/it/common/fixtures/scan-golden/`) follow the shapes of real BMAD
//! projects: front matter, `Status:` lines in the preamble and in a `## Status` section,
//! dependency labels and sections, numbered and lazily indented subtasks, human-validation
//! tasks, and checkboxes that are not tasks (fenced and indented code, tables, inline code, an
//! HTML comment). `expected-scan.json` was written by the binary before the scan was made
//! faster (issue 11 §4): the faster parser must give the same answers, byte for byte.

use std::fs;
use std::path::Path;

use crate::common::TestRepo;

fn copy_tree(from: &Path, to: &Path, skip: &str) {
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("fixture entry");
        let name = entry.file_name();
        if name == skip {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            fs::create_dir_all(&dst).expect("mkdir");
            copy_tree(&src, &dst, skip);
        } else {
            fs::copy(&src, &dst).expect("copy fixture file");
        }
    }
}

#[test]
fn scan_json_matches_the_golden_output() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/common/fixtures/scan-golden");
    let r = TestRepo::new();
    copy_tree(&fixture, &r.root, "expected-scan.json");
    r.commit_all("stories");
    let run = r.teleos(["scan", "--json"]);
    run.ok();
    let expected =
        fs::read_to_string(fixture.join("expected-scan.json")).expect("read expected-scan.json");
    assert_eq!(
        run.stdout, expected,
        "scan --json differs from the golden output"
    );
}
