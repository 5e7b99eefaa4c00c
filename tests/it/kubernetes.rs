//! `teleos.runner=kubernetes` without a cluster: the Indexed Job of a wave is rendered from the
//! template in the repository and compared with a golden file, then checked by the real
//! `kubectl` (client-side dry run) where it is installed. Setup errors reach the user before
//! anything is pushed.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use git_teleos::batch::remote::engine::JobSpec;
use git_teleos::batch::remote::kubernetes::{render, Wave, DEFAULT_TEMPLATE};

use common::TestRepo;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/common/fixtures/kubernetes")
}

/// A wave of three stories as a batch makes them, one with a path YAML would misread unquoted.
fn jobs() -> Vec<JobSpec> {
    let base = "3f1c9a7e5b2d4c6a8e0f1b3d5c7a9e1f2b4d6c8a".to_string();
    [
        ("1-1-user-login", "docs/sprint-artifacts/1-1-user-login.md"),
        (
            "1-2-password-reset",
            "docs/sprint-artifacts/1-2-password-reset.md",
        ),
        ("2-1-audit", "docs/sprint artifacts/2-1-audit: \"v2\" #1.md"),
    ]
    .into_iter()
    .map(|(key, story)| JobSpec {
        key: key.into(),
        story: story.into(),
        base: base.clone(),
    })
    .collect()
}

fn rendered() -> String {
    let jobs = jobs();
    render(
        DEFAULT_TEMPLATE,
        &Wave {
            name: "teleos-a1b2c3-w1",
            image: "ghcr.io/example/teleos-agent:1.4",
            session: "a1b2c3",
            remote: "https://github.com/example/shop.git",
            agent_secret: "teleos-agent",
            git_secret: "teleos-git",
            deadline_secs: 11400,
            jobs: &jobs,
        },
    )
    .expect("the built-in template renders")
}

#[test]
fn the_built_in_template_renders_a_wave_like_the_golden_file() {
    let golden = fixtures().join("wave.yaml");
    let got = rendered();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        got, expected,
        "the rendered wave differs from {}; if the change is meant, regenerate it with: UPDATE_GOLDEN=1 cargo test --test it kubernetes::",
        golden.display()
    );
}

/// A kubeconfig for a cluster that does not exist, and kubectl's discovery cache for it, so
/// that a client-side dry run needs no server: `kubectl create --dry-run=client` maps kinds
/// to resources through discovery, which it reads from the cache. (`kubectl apply
/// --dry-run=client` cannot work offline: it asks the server for the live object to compute
/// its patch.)
fn offline_kubectl(dir: &Path) -> (PathBuf, PathBuf) {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: offline\n  cluster:\n    server: https://teleos-offline.invalid:6443\ncontexts:\n- name: offline\n  context:\n    cluster: offline\n    namespace: teleos\n    user: nobody\nusers:\n- name: nobody\n  user:\n    token: offline\ncurrent-context: offline\n",
    )
    .unwrap();
    let cache = dir.join("cache");
    // kubectl names the folder after the server, every character but [\w/.] made '_'.
    let discovery = cache.join("discovery/teleos_offline.invalid_6443");
    for (path, body) in [
        (
            "servergroups.json",
            r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"","versions":[{"groupVersion":"v1","version":"v1"}],"preferredVersion":{"groupVersion":"v1","version":"v1"}},{"name":"batch","versions":[{"groupVersion":"batch/v1","version":"v1"}],"preferredVersion":{"groupVersion":"batch/v1","version":"v1"}}]}"#,
        ),
        (
            "v1/serverresources.json",
            r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["create","delete","get","list","patch","update","watch"]},{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","delete","get","list","patch","update","watch"]}]}"#,
        ),
        (
            "batch/v1/serverresources.json",
            r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"batch/v1","resources":[{"name":"jobs","singularName":"job","namespaced":true,"kind":"Job","verbs":["create","delete","get","list","patch","update","watch"]}]}"#,
        ),
    ] {
        let p = discovery.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    (kubeconfig, cache)
}

#[test]
fn kubectl_dry_run_accepts_the_rendered_wave_or_the_test_skips_saying_why() {
    let Ok(kubectl) = which::which("kubectl") else {
        eprintln!(
            "SKIPPED kubernetes::kubectl_dry_run…: kubectl is not on PATH (.ci/run installs Debian's kubernetes-client)"
        );
        return;
    };
    let tmp = TestRepo::new();
    let (kubeconfig, cache) = offline_kubectl(&tmp.home);
    let mut child = Command::new(&kubectl)
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args([
            "create",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "json",
            "-f",
            "-",
        ])
        .env("HOME", &tmp.home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rendered().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl refused the wave: {stderr}");
    // One JSON object per document, one after the other (older kubectl: a List of them).
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let items: Vec<serde_json::Value> = match docs.as_slice() {
        [list] if list["kind"] == "List" => list["items"].as_array().cloned().unwrap_or_default(),
        _ => docs,
    };
    let j = serde_json::Value::Array(items.clone());
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Job"], "{j}");
    let (map, job) = (&items[0], &items[1]);
    // What kubectl read back is what the job needs: index N maps to story N.
    assert_eq!(map["data"]["key-2"], "2-1-audit");
    assert_eq!(
        map["data"]["story-2"],
        "docs/sprint artifacts/2-1-audit: \"v2\" #1.md"
    );
    assert_eq!(job["metadata"]["name"], "teleos-a1b2c3-w1");
    assert_eq!(job["metadata"]["namespace"], "teleos");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 3);
    assert_eq!(spec["parallelism"], 3);
    assert_eq!(spec["backoffLimitPerIndex"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "ghcr.io/example/teleos-agent:1.4"
    );
    assert_eq!(
        pod["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "teleos-agent"
    );
    assert_eq!(pod["volumes"][1]["secret"]["secretName"], "teleos-git");
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "teleos-a1b2c3-w1");
}

#[test]
fn kubernetes_runner_setup_errors_come_before_anything_is_pushed() {
    let r = common::repo_with_stories(&["1-1-first"]);
    let bare = r.with_shared_remote();
    r.git(&["config", "teleos.runner", "kubernetes"]);

    let run = r.teleos(["close", "--parallel", "2", "--all", "--yes"]);
    run.code(2);
    assert!(
        run.stderr
            .contains("error: teleos.runner is kubernetes, but teleos.kubernetesImage is not set")
            && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );

    r.git(&["config", "teleos.kubernetesImage", "example/teleos:1"]);
    r.write(
        "ops/job.yaml",
        "kind: Job\nimage: {{image}}\ncpu: {{cpu}}\n",
    );
    r.git(&["config", "teleos.kubernetesTemplate", "ops/job.yaml"]);
    let run = r.teleos(["close", "--parallel", "2", "--all", "--yes"]);
    run.code(2);
    assert!(
        run.stderr.contains("teleos.kubernetesTemplate")
            && run.stderr.contains("unknown placeholder '{{cpu}}'"),
        "{}",
        run.stderr
    );

    let refs = r.git_in(&r.home, &["ls-remote", bare.to_str().unwrap()]);
    assert!(!refs.stdout.contains("refs/teleos/"), "{}", refs.stdout);
    assert_eq!(r.git(&["branch", "--list", "integration-*"]), "");
}
