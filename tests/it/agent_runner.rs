//! The agent runner's environment. The test needs GIT_* variables in its own process, which
//! would leak into every other test's git commands: it runs in a child process of the test
//! binary.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::common::{in_child_process, test_path};
use git_teleos::agent::{run_agent, AgentConfig, AgentKind, RunRequest};

#[test]
fn repository_pinning_git_variables_do_not_reach_the_agent() {
    // What git exports to an extension or a hook: it would pin the agent to our repository.
    let env = [
        ("GIT_DIR", "/somewhere/.git"),
        ("GIT_WORK_TREE", "/somewhere"),
        ("GIT_INDEX_FILE", "/somewhere/.git/index"),
        ("GIT_COMMON_DIR", "/somewhere/.git"),
        ("GIT_OBJECT_DIRECTORY", "/somewhere/.git/objects"),
        ("GIT_PREFIX", "sub/"),
        ("GIT_CEILING_DIRECTORIES", "/ceiling"),
    ]
    .map(|(k, v)| (k, OsStr::new(v)));
    if !in_child_process(
        test_path!(repository_pinning_git_variables_do_not_reach_the_agent),
        &env,
    ) {
        return;
    }
    for (k, v) in env {
        assert_eq!(std::env::var_os(k).as_deref(), Some(v), "{k} in the child");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("agent.sh");
    fs::write(
        &script,
        "#!/bin/sh\n\
         for v in GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_COMMON_DIR GIT_OBJECT_DIRECTORY GIT_PREFIX; do\n\
           eval \"set=\\${$v+x}\"\n\
           if [ -n \"$set\" ]; then echo \"$v is set\"; exit 9; fi\n\
         done\n\
         echo \"clean ceiling=$GIT_CEILING_DIRECTORIES cwd=$(pwd -P)\"\n",
    )
    .expect("write script");
    let cfg = AgentConfig {
        kind: AgentKind::Custom,
        custom_command: Some(format!("/bin/sh {}", script.display())),
        timeout: Duration::from_secs(10),
        ..AgentConfig::default()
    };
    let log = dir.path().join("story.log");
    let cancel = AtomicBool::new(false);
    let req = RunRequest::new(dir.path(), "", &log, &cfg, &cancel);
    let out = run_agent(&req).expect("run");
    let cwd = Path::new(dir.path()).canonicalize().expect("canonical");
    assert_eq!(
        out.final_text.as_deref(),
        Some(format!("clean ceiling=/ceiling cwd={}\n", cwd.display()).as_str()),
        "{out:?}"
    );
    assert!(out.succeeded());
}
