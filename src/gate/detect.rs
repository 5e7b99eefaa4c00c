//! Which checks a project has, read from its files: the commands its own developers run.
//!
//! A `Makefile` with a `test` target is the project's own umbrella and wins alone; otherwise
//! every kind found runs (a repository with a web front end and a Rust back end has both).

use std::path::Path;

use super::Gate;

/// npm's placeholder for "no tests": running it would fail every story.
const NPM_PLACEHOLDER: &str = "no test specified";

/// The gates `root` suggests, in a fixed order; empty when nothing is recognised.
pub fn detect(root: &Path) -> Vec<Gate> {
    if let Some(g) = makefile(root) {
        return vec![g];
    }
    [node(root), cargo(root), pytest(root), go(root)]
        .into_iter()
        .flatten()
        .collect()
}

fn read(root: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(root.join(name)).ok()
}

/// `package.json` with a real `test` script; the package manager is the one whose lock file
/// is there (npm without one).
fn node(root: &Path) -> Option<Gate> {
    let text = read(root, "package.json")?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let script = json.get("scripts")?.get("test")?.as_str()?;
    if script.trim().is_empty() || script.contains(NPM_PLACEHOLDER) {
        return None;
    }
    let (cmd, lock) = if root.join("pnpm-lock.yaml").exists() {
        ("pnpm test", "pnpm-lock.yaml")
    } else if root.join("yarn.lock").exists() {
        ("yarn test", "yarn.lock")
    } else if root.join("bun.lockb").exists() || root.join("bun.lock").exists() {
        // `bun test` is bun's own runner; `bun run test` is the project's script.
        ("bun run test", "bun.lock")
    } else {
        ("npm test", "")
    };
    let why = if lock.is_empty() {
        "package.json test script".to_string()
    } else {
        format!("package.json test script, {lock}")
    };
    Gate::new(cmd, why)
}

fn cargo(root: &Path) -> Option<Gate> {
    root.join("Cargo.toml")
        .is_file()
        .then(|| Gate::new("cargo test", "Cargo.toml"))
        .flatten()
}

/// pytest's own configuration places (pytest.ini, pyproject.toml, tox.ini, setup.cfg) and a
/// root `conftest.py`.
fn pytest(root: &Path) -> Option<Gate> {
    let found = if root.join("pytest.ini").is_file() {
        Some("pytest.ini")
    } else if read(root, "pyproject.toml").is_some_and(|t| t.contains("[tool.pytest")) {
        Some("pyproject.toml [tool.pytest]")
    } else if read(root, "tox.ini").is_some_and(|t| t.contains("[pytest]")) {
        Some("tox.ini [pytest]")
    } else if read(root, "setup.cfg").is_some_and(|t| t.contains("[tool:pytest]")) {
        Some("setup.cfg [tool:pytest]")
    } else if root.join("conftest.py").is_file() {
        Some("conftest.py")
    } else {
        None
    }?;
    Gate::new("python -m pytest", found)
}

fn go(root: &Path) -> Option<Gate> {
    root.join("go.mod")
        .is_file()
        .then(|| Gate::new("go test ./...", "go.mod"))
        .flatten()
}

/// A `test:` rule (also `test tests:` or `test::`), not a variable like `test := …`.
fn makefile(root: &Path) -> Option<Gate> {
    let (name, text) = ["GNUmakefile", "makefile", "Makefile"]
        .iter()
        .find_map(|n| read(root, n).map(|t| (*n, t)))?;
    let has_test = text.lines().any(|line| {
        let Some((targets, rest)) = line.split_once(':') else {
            return false;
        };
        !line.starts_with(['\t', ' ', '#'])
            && !rest.starts_with('=')
            && targets.split_whitespace().any(|t| t == "test")
    });
    has_test
        .then(|| Gate::new("make test", format!("{name} test target")))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    fn commands(files: &[(&str, &str)]) -> Vec<String> {
        detect(project(files).path())
            .into_iter()
            .map(|g| g.command)
            .collect()
    }

    const PKG: &str =
        r#"{"name": "web", "scripts": {"build": "vite build", "test": "vitest run"}}"#;

    #[test]
    fn node_uses_the_package_manager_of_the_lock_file() {
        assert_eq!(commands(&[("package.json", PKG)]), ["npm test"]);
        assert_eq!(
            commands(&[("package.json", PKG), ("package-lock.json", "{}")]),
            ["npm test"]
        );
        assert_eq!(
            commands(&[
                ("package.json", PKG),
                ("pnpm-lock.yaml", "lockfileVersion: '9.0'\n")
            ]),
            ["pnpm test"]
        );
        assert_eq!(
            commands(&[("package.json", PKG), ("yarn.lock", "# yarn lockfile v1\n")]),
            ["yarn test"]
        );
        assert_eq!(
            commands(&[("package.json", PKG), ("bun.lock", "{}")]),
            ["bun run test"]
        );
        let g = detect(project(&[("package.json", PKG), ("yarn.lock", "")]).path());
        assert_eq!(g[0].argv, ["yarn", "test"]);
        assert!(g[0].why.contains("yarn.lock"), "{}", g[0].why);
    }

    #[test]
    fn node_without_a_real_test_script_is_not_a_gate() {
        let placeholder = r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#;
        assert!(commands(&[("package.json", placeholder)]).is_empty());
        assert!(commands(&[("package.json", r#"{"scripts": {"build": "tsc"}}"#)]).is_empty());
        assert!(commands(&[("package.json", "not json")]).is_empty());
    }

    #[test]
    fn cargo_pytest_and_go() {
        assert_eq!(
            commands(&[("Cargo.toml", "[package]\nname = \"x\"\n")]),
            ["cargo test"]
        );
        assert_eq!(
            commands(&[("go.mod", "module example.com/x\n\ngo 1.22\n")]),
            ["go test ./..."]
        );
        for files in [
            vec![("pytest.ini", "[pytest]\n")],
            vec![(
                "pyproject.toml",
                "[project]\nname = \"x\"\n\n[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n",
            )],
            vec![(
                "tox.ini",
                "[tox]\nenvlist = py312\n\n[pytest]\naddopts = -q\n",
            )],
            vec![(
                "setup.cfg",
                "[metadata]\nname = x\n\n[tool:pytest]\ntestpaths = tests\n",
            )],
            vec![("conftest.py", "import pytest\n")],
        ] {
            let g = detect(project(&files).path());
            assert_eq!(g.len(), 1, "{files:?}");
            assert_eq!(g[0].argv, ["python", "-m", "pytest"], "{files:?}");
        }
        // A pyproject.toml without pytest configuration is not a pytest project.
        assert!(commands(&[("pyproject.toml", "[tool.black]\nline-length = 100\n")]).is_empty());
    }

    #[test]
    fn makefile_test_target_wins_alone() {
        let mk = ".PHONY: build test\nbuild:\n\tcargo build\n\ntest: build\n\tcargo test\n";
        assert_eq!(
            commands(&[("Makefile", mk), ("Cargo.toml", "[package]\n")]),
            ["make test"]
        );
        assert_eq!(
            commands(&[("GNUmakefile", "test tests:\n\t./run\n")]),
            ["make test"]
        );
        // A variable or a recipe line named test is no target.
        let no_target = "test := unit\nall:\n\ttest: x\n# test: later\n";
        assert!(commands(&[("Makefile", no_target)]).is_empty());
    }

    #[test]
    fn several_kinds_all_run_and_nothing_found_is_empty() {
        assert_eq!(
            commands(&[
                ("package.json", PKG),
                ("Cargo.toml", "[package]\n"),
                ("go.mod", "module x\n")
            ]),
            ["npm test", "cargo test", "go test ./..."]
        );
        assert!(commands(&[("README.md", "# hello\n")]).is_empty());
    }
}
