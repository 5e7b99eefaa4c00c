//! `teleos.runner=kubernetes`: one Indexed Job per wave of stories. Completion index N runs
//! the wave's Nth story, whose key, path and base a ConfigMap of the same name holds. The
//! template is `contrib/kubernetes/teleos-story-job.yaml` (compiled in) or the user's
//! (`teleos.kubernetesTemplate`); [`render`] fills it, a pure function. The wave is applied
//! with `kubectl apply -f -`, watched with `kubectl get pods`, a silent story cancelled by
//! deleting its pod (`backoffLimitPerIndex: 0` keeps it from being re-run), and the batch's
//! Jobs deleted at the end. Every kubectl call goes through [`crate::process::Cmd`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::process::Cmd;
use crate::settings::Settings;

use super::engine::{Engine, EngineError, JobContext, JobSpec};

/// The built-in template.
pub const DEFAULT_TEMPLATE: &str =
    include_str!("../../../contrib/kubernetes/teleos-story-job.yaml");

/// One kubectl call gets this long (the API server answers in seconds, or is unreachable).
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);
/// The Job's own deadline is the orchestrator's timeout plus this, for pulling the image and
/// fetching: the cluster stops it even if the orchestrator is gone.
const DEADLINE_MARGIN: Duration = Duration::from_secs(600);

/// A job template that cannot be filled.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the job template names an unknown placeholder '{{{{{0}}}}}'")]
    UnknownPlaceholder(String),
    #[error("the job template has a '{{{{' without its '}}}}'")]
    Unclosed,
}

/// What one wave's Job is made of.
#[derive(Debug, Clone)]
pub struct Wave<'a> {
    /// The Job's and the ConfigMap's name (a DNS label).
    pub name: &'a str,
    pub image: &'a str,
    pub session: &'a str,
    pub remote: &'a str,
    pub agent_secret: &'a str,
    pub git_secret: &'a str,
    /// The Job's `activeDeadlineSeconds`.
    pub deadline_secs: u64,
    /// Completion index N runs `jobs[N]`.
    pub jobs: &'a [JobSpec],
}

/// Fill `template`'s `{{name}}` placeholders: strings as JSON strings (valid YAML scalars,
/// whatever they hold), numbers as numbers, `{{stories}}` as a JSON mapping (valid YAML flow
/// style) from `key-N`, `story-N`, `base-N` to the Nth story's values. A placeholder this
/// function does not know is an error, not left in place.
pub fn render(template: &str, wave: &Wave) -> Result<String, RenderError> {
    let quote = |s: &str| Value::String(s.to_string()).to_string();
    let mut stories = serde_json::Map::new();
    for (i, job) in wave.jobs.iter().enumerate() {
        stories.insert(format!("key-{i}"), Value::String(job.key.clone()));
        stories.insert(format!("story-{i}"), Value::String(job.story.clone()));
        stories.insert(format!("base-{i}"), Value::String(job.base.clone()));
    }
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "name" => quote(wave.name),
            "image" => quote(wave.image),
            "session" => quote(wave.session),
            "remote" => quote(wave.remote),
            "agent_secret" => quote(wave.agent_secret),
            "git_secret" => quote(wave.git_secret),
            "completions" => wave.jobs.len().to_string(),
            "deadline" => wave.deadline_secs.to_string(),
            "stories" => Value::Object(stories.clone()).to_string(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(RenderError::Unclosed)?;
        let name = after[..close].trim();
        let filled =
            value(name).ok_or_else(|| RenderError::UnknownPlaceholder(name.to_string()))?;
        out.push_str(&filled);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A wave applied to the cluster.
struct Applied {
    name: String,
    /// Index N's story key.
    keys: Vec<String>,
}

pub struct KubernetesEngine {
    ctx: JobContext,
    template: String,
    image: String,
    namespace: Option<String>,
    agent_secret: String,
    git_secret: String,
    waves: Vec<Applied>,
    /// Stories whose end has been told to the loop (or that were cancelled).
    settled: BTreeSet<String>,
    /// Stories whose pod was still pending at the last poll, with why.
    pending: Vec<(String, String)>,
}

impl KubernetesEngine {
    pub fn new(settings: &Settings, ctx: JobContext) -> Result<Self> {
        let k = &settings.kubernetes;
        let image = k.image.clone().ok_or_else(|| {
            Error::usage_hint(
                "teleos.runner is kubernetes, but teleos.kubernetesImage is not set",
                "set it to an image with git, git-teleos and the agent CLI: git config teleos.kubernetesImage <image>",
            )
        })?;
        let template = super::engine::read_template(
            &ctx.root,
            "teleos.kubernetesTemplate",
            k.template.as_ref(),
            DEFAULT_TEMPLATE,
        )?;
        let engine = KubernetesEngine {
            ctx,
            template,
            image,
            namespace: k.namespace.clone(),
            agent_secret: k.agent_secret.clone(),
            git_secret: k.git_secret.clone(),
            waves: Vec::new(),
            settled: BTreeSet::new(),
            pending: Vec::new(),
        };
        // A template that cannot be filled is refused before anything is pushed.
        engine
            .render_wave("teleos-check", &[])
            .map_err(|e| Error::Config {
                key: "teleos.kubernetesTemplate".into(),
                value: k
                    .template
                    .as_ref()
                    .map_or("(built in)".into(), |p| p.display().to_string()),
                reason: e.to_string(),
            })?;
        if which::which("kubectl").is_err() {
            return Err(Error::setup(
                "teleos.runner is kubernetes, but kubectl is not on PATH",
                "install kubectl and point it at the cluster (KUBECONFIG), or choose another teleos.runner",
            ));
        }
        Ok(engine)
    }

    fn render_wave(&self, name: &str, jobs: &[JobSpec]) -> Result<String, RenderError> {
        render(
            &self.template,
            &Wave {
                name,
                image: &self.image,
                session: &self.ctx.session,
                remote: &self.ctx.remote,
                agent_secret: &self.agent_secret,
                git_secret: &self.git_secret,
                deadline_secs: (self.ctx.timeout + DEADLINE_MARGIN).as_secs(),
                jobs,
            },
        )
    }

    fn kubectl(&self, args: &[&str]) -> Cmd<'static> {
        let mut cmd = Cmd::new("kubectl")
            .current_dir(&self.ctx.root)
            .timeout(KUBECTL_TIMEOUT);
        if let Some(ns) = &self.namespace {
            cmd = cmd.args(["--namespace", ns]);
        }
        cmd.args(args)
    }

    fn delete_waves(&self, names: &[&str]) -> Result<(), EngineError> {
        if names.is_empty() {
            return Ok(());
        }
        let objects: Vec<String> = names
            .iter()
            .flat_map(|n| [format!("job/{n}"), format!("configmap/{n}")])
            .collect();
        let mut args = vec!["delete", "--ignore-not-found", "--wait=false"];
        args.extend(objects.iter().map(String::as_str));
        self.kubectl(&args)
            .run_checked()
            .map_err(|e| EngineError::tool("kubectl delete", e))?;
        Ok(())
    }
}

impl Engine for KubernetesEngine {
    fn submit(&mut self, wave: &[JobSpec]) -> Result<Vec<String>, EngineError> {
        let name = format!("teleos-{}-w{}", self.ctx.session, self.waves.len() + 1);
        let yaml = self.render_wave(&name, wave)?;
        self.kubectl(&["apply", "-f", "-"])
            .stdin(yaml)
            .run_checked()
            .map_err(|e| EngineError::tool("kubectl apply", e))?;
        self.waves.push(Applied {
            name: name.clone(),
            keys: wave.iter().map(|j| j.key.clone()).collect(),
        });
        Ok((0..wave.len()).map(|i| format!("{name}#{i}")).collect())
    }

    fn poll(&mut self) -> Result<Vec<(String, EngineError)>, EngineError> {
        if self.waves.is_empty() {
            return Ok(Vec::new());
        }
        let selector = format!("teleos.session={}", self.ctx.session);
        let out = self
            .kubectl(&["get", "pods", "-l", &selector, "-o", "json"])
            .run_checked()
            .map_err(|e| EngineError::tool("kubectl get pods", e))?;
        let pods: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| EngineError::Unreadable {
                tool: "kubectl get pods",
                reason: e.to_string(),
            })?;
        let key_of = |job: &str, index: usize| {
            self.waves
                .iter()
                .find(|w| w.name == job)
                .and_then(|w| w.keys.get(index))
                .cloned()
        };
        self.pending = pending_pods(&pods)
            .into_iter()
            .filter_map(|(job, index, why)| Some((key_of(&job, index)?, why)))
            .collect();
        let mut died = Vec::new();
        for (job, index, why) in failed_pods(&pods) {
            let key = self
                .waves
                .iter()
                .find(|w| w.name == job)
                .and_then(|w| w.keys.get(index));
            let Some(key) = key else { continue };
            if self.settled.insert(key.clone()) {
                died.push((key.clone(), EngineError::Died(why)));
            }
        }
        Ok(died)
    }

    fn queued(&self) -> Vec<(String, String)> {
        self.pending
            .iter()
            .filter(|(k, _)| !self.settled.contains(k))
            .cloned()
            .collect()
    }

    fn cancel(&mut self, key: &str) -> Result<(), EngineError> {
        self.settled.insert(key.to_string());
        let Some((name, index)) = self.waves.iter().find_map(|w| {
            let i = w.keys.iter().position(|k| k == key)?;
            Some((w.name.clone(), i))
        }) else {
            return Ok(());
        };
        let selector = format!("job-name={name},batch.kubernetes.io/job-completion-index={index}");
        self.kubectl(&["delete", "pods", "-l", &selector, "--wait=false"])
            .run_checked()
            .map_err(|e| EngineError::tool("kubectl delete pods", e))?;
        Ok(())
    }

    fn finish(&mut self) {
        // Every story is collected or cancelled by now: the Jobs have nothing left to do.
        let names: Vec<&str> = self.waves.iter().map(|w| w.name.as_str()).collect();
        let _ = self.delete_waves(&names);
    }
}

/// A pod's job name and completion index, from its labels and annotations.
fn job_and_index(pod: &Value) -> Option<(&str, usize)> {
    let meta = &pod["metadata"];
    let job = meta["labels"]["batch.kubernetes.io/job-name"]
        .as_str()
        .or_else(|| meta["labels"]["job-name"].as_str())?;
    let index = meta["annotations"]["batch.kubernetes.io/job-completion-index"]
        .as_str()
        .or_else(|| meta["labels"]["batch.kubernetes.io/job-completion-index"].as_str())
        .and_then(|i| i.parse::<usize>().ok())?;
    Some((job, index))
}

/// The pods still waiting to run (not scheduled yet, or their image still being pulled),
/// except those [`failed_pods`] knows can never start: `(job name, completion index, why)`.
pub fn pending_pods(pods: &Value) -> Vec<(String, usize, String)> {
    let stuck: BTreeSet<(String, usize)> = failed_pods(pods)
        .into_iter()
        .map(|(j, i, _)| (j, i))
        .collect();
    let mut found = Vec::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let Some((job, index)) = job_and_index(pod) else {
            continue;
        };
        let status = &pod["status"];
        if status["phase"] != "Pending" || stuck.contains(&(job.to_string(), index)) {
            continue;
        }
        let unscheduled = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False");
        let waiting = status["containerStatuses"]
            .as_array()
            .and_then(|c| c.first())
            .map(|c| &c["state"]["waiting"]["reason"]);
        let why = unscheduled
            .and_then(|c| c["reason"].as_str())
            .or_else(|| waiting.and_then(Value::as_str))
            .unwrap_or("Pending");
        found.push((job.to_string(), index, why.to_string()));
    }
    found
}

/// The pods of `kubectl get pods -o json` that ended without success, or that can never
/// start (a missing secret, an image that cannot be pulled): `(job name, completion index,
/// the engine's reason)`.
pub fn failed_pods(pods: &Value) -> Vec<(String, usize, String)> {
    const STUCK: &[&str] = &[
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    ];
    let mut found = BTreeMap::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        let Some((job, index)) = job_and_index(pod) else {
            continue;
        };
        let status = &pod["status"];
        let container = status["containerStatuses"]
            .as_array()
            .and_then(|c| c.first())
            .cloned()
            .unwrap_or(Value::Null);
        let why = if status["phase"] == "Failed" {
            let t = &container["state"]["terminated"];
            let mut why = format!("pod {name} failed");
            if let Some(r) = t["reason"].as_str().or(status["reason"].as_str()) {
                why.push_str(&format!(": {r}"));
            }
            if let Some(code) = t["exitCode"].as_i64() {
                why.push_str(&format!(" (exit code {code})"));
            }
            if let Some(m) = t["message"].as_str().or(status["message"].as_str()) {
                why.push_str(&format!(": {}", m.trim()));
            }
            why
        } else {
            let w = &container["state"]["waiting"];
            match w["reason"].as_str() {
                Some(r) if STUCK.contains(&r) => {
                    let mut why = format!("pod {name} cannot start: {r}");
                    if let Some(m) = w["message"].as_str() {
                        why.push_str(&format!(": {}", m.trim()));
                    }
                    why
                }
                _ => continue,
            }
        };
        found.entry((job.to_string(), index)).or_insert(why);
    }
    found.into_iter().map(|((j, i), w)| (j, i, w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(jobs: &[JobSpec]) -> Wave<'_> {
        Wave {
            name: "teleos-a1b2c3-w1",
            image: "img",
            session: "a1b2c3",
            remote: "https://example.com/r.git",
            agent_secret: "a",
            git_secret: "g",
            deadline_secs: 60,
            jobs,
        }
    }

    #[test]
    fn values_are_quoted_and_unknown_placeholders_refused() {
        let jobs = [JobSpec {
            key: "1-1".into(),
            story: "docs/a \"b\": c.md".into(),
            base: "abc".into(),
        }];
        let out = render(
            "n: {{ name }}\nd: {{stories}}\nc: {{completions}}",
            &wave(&jobs),
        );
        assert_eq!(
            out.unwrap(),
            "n: \"teleos-a1b2c3-w1\"\nd: {\"key-0\":\"1-1\",\"story-0\":\"docs/a \\\"b\\\": c.md\",\"base-0\":\"abc\"}\nc: 1"
        );
        assert!(matches!(
            render("x: {{nope}}", &wave(&jobs)),
            Err(RenderError::UnknownPlaceholder(n)) if n == "nope"
        ));
        assert!(matches!(
            render("x: {{name", &wave(&jobs)),
            Err(RenderError::Unclosed)
        ));
    }

    #[test]
    fn failed_and_stuck_pods_name_their_story_index_and_reason() {
        let pods: Value = serde_json::json!({"items": [
            {"metadata": {"name": "teleos-a1b2c3-w1-0-x", "labels": {"job-name": "teleos-a1b2c3-w1"},
              "annotations": {"batch.kubernetes.io/job-completion-index": "0"}},
             "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated":
               {"reason": "OOMKilled", "exitCode": 137}}}]}},
            {"metadata": {"name": "teleos-a1b2c3-w1-1-y", "labels": {"batch.kubernetes.io/job-name": "teleos-a1b2c3-w1",
              "batch.kubernetes.io/job-completion-index": "1"}},
             "status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting":
               {"reason": "CreateContainerConfigError", "message": "secret \"teleos-agent\" not found"}}}]}},
            {"metadata": {"name": "teleos-a1b2c3-w1-2-z", "labels": {"job-name": "teleos-a1b2c3-w1"},
              "annotations": {"batch.kubernetes.io/job-completion-index": "2"}},
             "status": {"phase": "Running"}}
        ]});
        assert_eq!(
            failed_pods(&pods),
            [
                (
                    "teleos-a1b2c3-w1".to_string(),
                    0,
                    "pod teleos-a1b2c3-w1-0-x failed: OOMKilled (exit code 137)".to_string()
                ),
                (
                    "teleos-a1b2c3-w1".to_string(),
                    1,
                    "pod teleos-a1b2c3-w1-1-y cannot start: CreateContainerConfigError: secret \"teleos-agent\" not found".to_string()
                ),
            ]
        );
    }

    #[test]
    fn pending_pods_wait_in_the_queue_but_stuck_ones_do_not() {
        let pod = |i: usize, status: Value| {
            serde_json::json!({"metadata": {"name": format!("p{i}"),
                "labels": {"job-name": "w1"},
                "annotations": {"batch.kubernetes.io/job-completion-index": i.to_string()}},
              "status": status})
        };
        let pods = serde_json::json!({"items": [
            pod(0, serde_json::json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]})),
            pod(1, serde_json::json!({"phase": "Pending", "containerStatuses": [
                {"state": {"waiting": {"reason": "ContainerCreating"}}}]})),
            pod(2, serde_json::json!({"phase": "Pending", "containerStatuses": [
                {"state": {"waiting": {"reason": "ImagePullBackOff"}}}]})),
            pod(3, serde_json::json!({"phase": "Running"})),
            pod(4, serde_json::json!({"phase": "Pending"})),
        ]});
        let w = |i: usize, why: &str| ("w1".to_string(), i, why.to_string());
        assert_eq!(
            pending_pods(&pods),
            [
                w(0, "Unschedulable"),
                w(1, "ContainerCreating"),
                w(4, "Pending")
            ]
        );
    }
}
