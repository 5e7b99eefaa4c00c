//! Unit tests of the scan: folders, categories, skips, dependencies, statuses.

use super::*;
use std::fs;

fn write(root: &Path, rel: &str, text: impl AsRef<[u8]>) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// `n` checked and `u` unchecked top-level tasks.
fn story(checked: usize, unchecked: usize) -> String {
    let mut s = String::from("# Story\n\n## Tasks\n");
    s += &"- [x] done\n".repeat(checked);
    s += &"- [ ] todo\n".repeat(unchecked);
    s
}

fn keys(r: &ScanResult) -> Vec<&str> {
    r.stories.iter().map(|s| s.story_key.as_str()).collect()
}

fn skip_reason<'a>(r: &'a ScanResult, name: &str) -> Option<&'a str> {
    r.skipped
        .iter()
        .find(|s| s.filename == name)
        .map(|s| s.reason.as_str())
}

#[test]
fn finds_default_dirs_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let err = find_artifacts_dir(root, None).unwrap_err();
    match &err {
        Error::NoArtifactsDir { tried } => {
            let expected: Vec<PathBuf> =
                DEFAULT_ARTIFACT_DIRS.iter().map(|d| root.join(d)).collect();
            assert_eq!(tried, &expected);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("docs/stories"));
    assert_eq!(err.exit_code(), 2);
    fs::create_dir_all(root.join("docs/stories")).unwrap();
    fs::create_dir_all(root.join("_bmad-output/implementation-artifacts")).unwrap();
    assert_eq!(
        find_artifacts_dir(root, None).unwrap(),
        root.join("_bmad-output/implementation-artifacts")
    );
}

#[test]
fn configured_dir_and_stories_subfolder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let err = find_artifacts_dir(root, Some(Path::new("custom"))).unwrap_err();
    assert!(
        matches!(err, Error::NoArtifactsDir { ref tried } if tried == &vec![root.join("custom")])
    );
    write(root, "custom/README.md", "# read me");
    write(root, "custom/stories/1-1.md", story(1, 0));
    assert_eq!(
        find_artifacts_dir(root, Some(Path::new("custom"))).unwrap(),
        root.join("custom/stories")
    );
    let abs = root.join("custom");
    assert_eq!(
        find_artifacts_dir(Path::new("/nonexistent"), Some(&abs)).unwrap(),
        root.join("custom/stories")
    );
    // Stories directly in the folder win over a stories/ subfolder.
    write(root, "custom/2-1.md", story(1, 0));
    assert_eq!(
        find_artifacts_dir(root, Some(Path::new("custom"))).unwrap(),
        root.join("custom")
    );
}

#[test]
fn scans_categories_and_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let d = "docs/sprint-artifacts";
    write(root, &format!("{d}/1-10-later.md"), story(10, 0));
    write(root, &format!("{d}/1-2-closeable.md"), story(7, 3));
    write(root, &format!("{d}/1-3-pipeline.md"), story(9, 4));
    write(root, &format!("{d}/2-1.md"), story(2, 1));
    write(root, &format!("{d}/README.md"), story(0, 1));
    write(root, &format!("{d}/Index.md"), "x");
    write(root, &format!("{d}/session-report-2024.md"), story(0, 1));
    write(root, &format!("{d}/epic-1-retrospective.md"), story(0, 1));
    write(root, &format!("{d}/notes.md"), "# Just notes\n");
    write(
        root,
        &format!("{d}/latin1.md"),
        b"- [ ] caf\xe9\n".as_slice(),
    );
    write(root, &format!("{d}/big.md"), "- [ ] x\n".repeat(200));
    write(root, &format!("{d}/not-markdown.txt"), story(0, 1));
    write(
        root,
        &format!("{d}/completions/1-2-closeable.md"),
        story(0, 1),
    );
    let mut opts = ScanOptions::new(root);
    opts.max_file_size = 1000;
    let r = scan(&opts).unwrap();
    assert_eq!(r.artifacts_dir, PathBuf::from(d));
    assert_eq!(
        keys(&r),
        ["1-2-closeable", "1-3-pipeline", "1-10-later", "2-1"]
    );
    let cats: Vec<Category> = r.stories.iter().map(|s| s.category).collect();
    assert_eq!(
        cats,
        [
            Category::Closeable,
            Category::NeedsPipeline,
            Category::Clean,
            Category::NeedsPipeline
        ]
    );
    let s = &r.stories[0];
    assert_eq!(
        (s.total, s.checked, s.unchecked, s.pct_unchecked),
        (10, 7, 3, 30.0)
    );
    assert_eq!(s.path, PathBuf::from(d).join("1-2-closeable.md"));
    assert_eq!(r.stories[1].pct_unchecked, 30.8);
    assert_eq!(r.stories[3].pct_unchecked, 33.3);
    assert_eq!(
        skip_reason(&r, "README.md"),
        Some("excluded by pattern 'README*'")
    );
    assert_eq!(
        skip_reason(&r, "Index.md"),
        Some("excluded by pattern 'index*'")
    );
    assert_eq!(
        skip_reason(&r, "session-report-2024.md"),
        Some("excluded by pattern 'session-report*'")
    );
    assert_eq!(
        skip_reason(&r, "epic-1-retrospective.md"),
        Some("excluded by pattern 'epic-*-retro*'")
    );
    assert_eq!(skip_reason(&r, "notes.md"), Some("no tasks (not a story)"));
    assert_eq!(skip_reason(&r, "latin1.md"), Some("not UTF-8"));
    assert_eq!(
        skip_reason(&r, "big.md"),
        Some("too large (1600 bytes > 1000)")
    );
    assert_eq!(r.skipped.len(), 7);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn recursive_scan_skips_completions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let d = "docs/stories";
    write(root, &format!("{d}/epic-1/1-1.md"), story(1, 0));
    write(root, &format!("{d}/epic-2/2-1.md"), story(1, 0));
    write(root, &format!("{d}/epic-2/deeper/2-2.md"), story(1, 0));
    write(root, &format!("{d}/completions/9-9.md"), story(1, 0));
    write(root, &format!("{d}/3-1.md"), story(1, 0));
    write(root, &format!("{d}/epic-3/3-1.md"), story(1, 0));
    let mut opts = ScanOptions::new(root);
    assert_eq!(keys(&scan(&opts).unwrap()), ["3-1"]);
    opts.recursive = true;
    let r = scan(&opts).unwrap();
    assert_eq!(keys(&r), ["1-1", "2-1", "2-2", "3-1"]);
    assert_eq!(
        r.stories[2].path,
        PathBuf::from(d).join("epic-2/deeper/2-2.md")
    );
    assert_eq!(r.stories[3].path, PathBuf::from(d).join("3-1.md"));
    assert_eq!(
        skip_reason(&r, "epic-3/3-1.md"),
        Some("duplicate story key '3-1' (also 3-1.md)")
    );
}

#[cfg(unix)]
#[test]
fn unreadable_file_is_skipped_not_fatal() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "docs/stories/1-1.md", story(1, 0));
    write(root, "docs/stories/1-2.md", story(1, 0));
    let locked = root.join("docs/stories/1-2.md");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&locked).is_ok() {
        return; // running as root: permissions are not enforced
    }
    let r = scan(&ScanOptions::new(root)).unwrap();
    assert_eq!(keys(&r), ["1-1"]);
    assert!(skip_reason(&r, "1-2.md")
        .unwrap()
        .starts_with("unreadable: "));
}

#[test]
fn huge_file_is_skipped_by_default_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let path = root.join("docs/stories/1-1-huge.md");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Sparse: 6 MiB without writing 6 MiB.
    let file = fs::File::create(&path).unwrap();
    file.set_len(6 * 1024 * 1024).unwrap();
    let r = scan(&ScanOptions::new(root)).unwrap();
    assert!(r.stories.is_empty());
    assert_eq!(
        skip_reason(&r, "1-1-huge.md"),
        Some("too large (6291456 bytes > 5242880)")
    );
}

#[test]
fn dependencies_cycles_and_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let d = "_bmad-output/implementation-artifacts";
    write(
        root,
        &format!("{d}/1-1-a.md"),
        format!("# A\n\nStatus: done\n\n{}", story(1, 0)),
    );
    write(
        root,
        &format!("{d}/1-2-b.md"),
        format!(
            "# B\n\nStatus: In Progress\n\n## Dependencies\n- Story 1.1\n- Story 1.3\n- 7-7\n\n{}",
            story(1, 1)
        ),
    );
    write(
        root,
        &format!("{d}/1-3-c.md"),
        format!(
            "---\ndepends_on: [1-2]\nstatus: review\n---\n{}",
            story(1, 0)
        ),
    );
    write(
        root,
        &format!("{d}/story-2.1-d.md"),
        format!("Status: done\n\n{}", story(1, 0)),
    );
    write(
        root,
        &format!("{d}/sprint-status.yaml"),
        "development_status:\n  1-1-a: done\n  1-2-b: in-progress  # x\n  1-3-c: done\n  2-1-d: done\n",
    );
    let r = scan(&ScanOptions::new(root)).unwrap();
    assert_eq!(keys(&r), ["1-1-a", "1-2-b", "1-3-c", "story-2.1-d"]);
    // 1-2-b → 1-3-c → 1-2-b: the edge closing the cycle (1-3-c → 1-2-b) is dropped.
    assert_eq!(r.stories[1].depends_on, ["1-1-a", "1-3-c"]);
    assert_eq!(r.stories[2].depends_on, Vec::<String>::new());
    assert_eq!(
        r.cycles,
        vec![vec!["1-2-b".to_string(), "1-3-c".to_string()]]
    );
    assert_eq!(r.stories[3].sprint_status.as_deref(), Some("done"));
    assert_eq!(r.stories[1].status.as_deref(), Some("in progress"));
    assert_eq!(r.stories[1].sprint_status.as_deref(), Some("in-progress"));
    assert_eq!(
        r.warnings,
        [
            "story 1-2-b: dependency no story matches '7-7'",
            "dependency cycle 1-2-b → 1-3-c → 1-2-b; ignoring the dependency of 1-3-c on 1-2-b",
            "story 1-3-c: its file says status 'review' but sprint-status.yaml says 'done'",
        ]
    );
    assert!(!r
        .skipped
        .iter()
        .any(|s| s.filename.starts_with("sprint-status")));
}

#[test]
fn sprint_status_in_parent_of_stories_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "docs/sprint-artifacts/sprint-status.yaml",
        "development_status:\n  1-1-x: review\n",
    );
    write(root, "docs/sprint-artifacts/stories/1-1-x.md", story(1, 1));
    let r = scan(&ScanOptions::new(root)).unwrap();
    assert_eq!(
        r.artifacts_dir,
        PathBuf::from("docs/sprint-artifacts/stories")
    );
    assert_eq!(r.stories[0].sprint_status.as_deref(), Some("review"));
}

#[test]
fn broken_sprint_status_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "docs/stories/1-1.md", story(1, 0));
    write(
        root,
        "docs/stories/sprint-status.yaml",
        b"development_status:\n  1-1: \xff\n".as_slice(),
    );
    let r = scan(&ScanOptions::new(root)).unwrap();
    assert_eq!(keys(&r), ["1-1"]);
    assert_eq!(r.stories[0].sprint_status, None);
    assert_eq!(
        r.warnings,
        ["ignoring docs/stories/sprint-status.yaml: not UTF-8"]
    );
}

#[test]
fn custom_exclude_patterns() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "docs/stories/1-1.md", story(1, 0));
    write(root, "docs/stories/draft-1-2.md", story(1, 0));
    write(root, "docs/stories/1-3-wip.md", story(1, 0));
    let mut opts = ScanOptions::new(root);
    opts.exclude_patterns = vec!["DRAFT".into(), "*-wip".into()];
    let r = scan(&opts).unwrap();
    assert_eq!(keys(&r), ["1-1", "1-3-wip"]);
    opts.exclude_patterns = vec!["*-wip.md".into()];
    assert_eq!(keys(&scan(&opts).unwrap()), ["1-1", "draft-1-2"]);
}

#[test]
fn globs() {
    assert!(glob_match("readme*", "readme.md"));
    assert!(glob_match("epic-*-retro*", "epic-12-retro-2024.md"));
    assert!(!glob_match("epic-*-retro*", "1-2-epic-retro.md"));
    assert!(glob_match("*a*b*", "xxaxxbxx"));
    assert!(!glob_match("*a*b", "xxaxxbxx"));
    assert!(glob_match("*", ""));
    assert!(!glob_match(&"*a".repeat(50), &"a".repeat(49)));
}

#[test]
fn natural_order() {
    let mut ks = vec![
        "2-1", "1-10", "1-2", "10-1", "1-2-a", "19a-1", "19-9", "H-1", "1-02",
    ];
    ks.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(
        ks,
        ["1-2", "1-02", "1-2-a", "1-10", "2-1", "10-1", "19-9", "19a-1", "H-1"]
    );
    assert_eq!(natural_cmp("H-1", "h-1"), Ordering::Less);
    assert_eq!(natural_cmp("H-1-b", "h-1-a"), Ordering::Greater);
    assert_eq!(
        natural_cmp("99999999999999999999999-1", "100000000000000000000000-1"),
        Ordering::Less
    );
}

/// `natural_cmp` before it skipped the common prefix: the order it must keep.
fn natural_cmp_reference(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let mut tie = Ordering::Equal;
    loop {
        match (a.first(), b.first()) {
            (None, None) => return tie,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                tie = tie.then(da.cmp(&db));
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                let ord = x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase());
                tie = tie.then(x.cmp(y));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

#[test]
fn natural_order_skipping_the_common_prefix_changes_nothing() {
    let parts = [
        "", "1", "01", "10", "2", "9", "a", "A", "-", "x-1", "X-01", "é",
    ];
    let mut keys = Vec::new();
    for a in parts {
        for b in parts {
            for c in parts {
                keys.push(format!("{a}{b}{c}"));
            }
        }
    }
    for a in &keys {
        for b in &keys {
            assert_eq!(
                natural_cmp(a, b),
                natural_cmp_reference(a, b),
                "{a:?} {b:?}"
            );
        }
    }
}

#[test]
fn percent_rounding() {
    assert_eq!(pct_one_decimal(1, 3), 33.3);
    assert_eq!(pct_one_decimal(2, 3), 66.7);
    assert_eq!(pct_one_decimal(1, 8), 12.5);
    assert_eq!(pct_one_decimal(1, 16), 6.3);
    assert_eq!(pct_one_decimal(0, 0), 0.0);
}
