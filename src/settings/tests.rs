//! Unit tests of `settings.rs`: resolution from maps standing in for git config.

use super::*;
use std::collections::BTreeMap;

fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    m
}

#[test]
fn runner_is_parsed_once_into_its_kind() {
    let o = Overrides::default();
    let s = Settings::resolve(&cfg(&[]), &o).unwrap();
    assert_eq!(s.runner, Runner::Local);
    assert_eq!(s.kubernetes.agent_secret, "teleos-agent");
    for r in Runner::ALL {
        let s = Settings::resolve(&cfg(&[("teleos.runner", r.name())]), &o).unwrap();
        assert_eq!(s.runner, r);
    }
    let s = Settings::resolve(&cfg(&[("teleos.runner", "Kubernetes")]), &o).unwrap();
    assert!(s.runner.is_remote());
    let e = Settings::resolve(&cfg(&[("teleos.runner", "nomad")]), &o).unwrap_err();
    assert!(
        e.to_string().contains("local, command, kubernetes, slurm"),
        "{e}"
    );
}

#[test]
fn schedule_defaults_to_longest_first_and_rejects_unknown_orders() {
    use crate::batch::order::Schedule;
    let o = Overrides::default();
    let s = Settings::resolve(&cfg(&[]), &o).unwrap();
    assert_eq!(s.schedule, Schedule::LongestFirst);
    let s = Settings::resolve(&cfg(&[("teleos.schedule", "listed")]), &o).unwrap();
    assert_eq!(s.schedule, Schedule::Listed);
    let e = Settings::resolve(&cfg(&[("teleos.schedule", "fifo")]), &o).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("teleos.schedule") && text.contains("longest-first, listed"),
        "{text}"
    );
}

#[test]
fn defaults_when_nothing_is_set() {
    let s = Settings::resolve(&cfg(&[]), &Overrides::default()).unwrap();
    assert_eq!(s.closeable_threshold, 0.30);
    assert_eq!(s.max_worktrees, 3);
    assert_eq!(s.agent, "claude");
    assert_eq!(s.story_timeout, Duration::from_secs(3600));
    assert_eq!(s.stale_hours, 4.0);
    assert_eq!(s.retries, 2);
    assert_eq!(s.circuit_breaker, 3);
    assert!(s.task_sections.is_none());
    assert_eq!(s.human_patterns.len(), 7);
    assert_eq!(s.gate, GateSetting::Auto);
    assert_eq!(s.gate_timeout, Duration::from_secs(1800));
    assert_eq!(s.gate_repairs, 1);
}

#[test]
fn gates_from_flag_config_or_none() {
    let c = cfg(&[
        ("teleos.gate", "cargo test"),
        ("teleos.gate", "sh -c 'make lint'"),
    ]);
    let s = Settings::resolve(&c, &Overrides::default()).unwrap();
    assert_eq!(
        s.gate,
        GateSetting::Commands(
            vec!["cargo test".into(), "sh -c 'make lint'".into()],
            "teleos.gate"
        )
    );
    let flags = Overrides {
        gates: vec!["./check.sh".into()],
        ..Default::default()
    };
    let s = Settings::resolve(&c, &flags).unwrap();
    assert_eq!(
        s.gate,
        GateSetting::Commands(vec!["./check.sh".into()], "--gate")
    );
    let flags = Overrides {
        no_gate: true,
        ..flags
    };
    assert!(matches!(
        Settings::resolve(&c, &flags).unwrap().gate,
        GateSetting::Off(_)
    ));
    let s = Settings::resolve(&cfg(&[("teleos.gate", "none")]), &Overrides::default()).unwrap();
    assert_eq!(s.gate, GateSetting::Off("teleos.gate=none".into()));
    for bad in [
        ("teleos.gate", "sh -c 'oops"),
        ("teleos.gateRepairs", "many"),
        ("teleos.gateTimeout", "0"),
    ] {
        let err = Settings::resolve(&cfg(&[bad]), &Overrides::default()).expect_err(bad.1);
        assert!(err.to_string().contains(bad.0), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn opencode_gets_a_stall_timeout_unless_one_is_set() {
    let flags = Overrides {
        agent: Some("opencode".into()),
        ..Default::default()
    };
    let s = Settings::resolve(&cfg(&[]), &flags).unwrap();
    assert_eq!(s.stall_timeout, Some(Duration::from_secs(300)));
    let s = Settings::resolve(&cfg(&[("teleos.stallTimeout", "0")]), &flags).unwrap();
    assert_eq!(s.stall_timeout, None);
    let s = Settings::resolve(&cfg(&[("teleos.stallTimeout", "30")]), &flags).unwrap();
    assert_eq!(s.stall_timeout, Some(Duration::from_secs(30)));
    let s = Settings::resolve(&cfg(&[]), &Overrides::default()).unwrap();
    assert_eq!(s.stall_timeout, None);
    assert_eq!(s.agent_stagger, Duration::from_millis(500));
}

#[test]
fn flag_beats_config_beats_default() {
    let c = cfg(&[
        ("teleos.maxWorktrees", "5"),
        ("teleos.closeableThreshold", "0.5"),
    ]);
    let s = Settings::resolve(&c, &Overrides::default()).unwrap();
    assert_eq!(s.max_worktrees, 5);
    assert_eq!(s.closeable_threshold, 0.5);
    let flags = Overrides {
        max_worktrees: Some(2),
        ..Default::default()
    };
    let s = Settings::resolve(&c, &flags).unwrap();
    assert_eq!(s.max_worktrees, 2);
}

#[test]
fn malformed_values_name_the_key() {
    for (key, value) in [
        ("teleos.closeableThreshold", "1.7"),
        ("teleos.closeableThreshold", "abc"),
        ("teleos.maxWorktrees", "0"),
        ("teleos.storyTimeout", "-5"),
        ("teleos.staleHours", "-1"),
        ("teleos.staleHours", "soon"),
        ("teleos.updateTracker", "sometimes"),
        ("teleos.agent", "clippy"),
        ("teleos.taskSections", "maybe"),
    ] {
        let err = Settings::resolve(&cfg(&[(key, value)]), &Overrides::default()).expect_err(key);
        let msg = err.to_string();
        assert!(msg.contains(key), "{msg}");
        assert!(msg.contains(value), "{msg}");
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn multi_valued_patterns_replace_the_defaults() {
    let c = cfg(&[
        ("teleos.humanValidationPattern", "ask the PO"),
        ("teleos.humanValidationPattern", "screen reader"),
    ]);
    let s = Settings::resolve(&c, &Overrides::default()).unwrap();
    assert_eq!(s.human_patterns, vec!["ask the PO", "screen reader"]);
}

#[test]
fn task_sections_use_configured_headings() {
    let c = cfg(&[
        ("teleos.taskSections", "true"),
        ("teleos.taskSectionHeading", "Work Items"),
    ]);
    let s = Settings::resolve(&c, &Overrides::default()).unwrap();
    assert_eq!(s.task_sections, Some(vec!["Work Items".to_string()]));
    let s = Settings::resolve(
        &cfg(&[("teleos.taskSections", "yes")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.task_sections.map(|v| v.len()), Some(3));
}

#[test]
fn stale_hours_zero_is_no_grace_period() {
    let s = Settings::resolve(&cfg(&[("teleos.staleHours", "0")]), &Overrides::default()).unwrap();
    assert_eq!(s.stale_hours, 0.0);
    let flags = Overrides {
        stale_hours: Some(0.0),
        ..Default::default()
    };
    assert_eq!(
        Settings::resolve(&cfg(&[]), &flags).unwrap().stale_hours,
        0.0
    );
    let flags = Overrides {
        stale_hours: Some(-1.0),
        ..Default::default()
    };
    assert!(Settings::resolve(&cfg(&[]), &flags).is_err());
}

#[test]
fn update_tracker_flag_over_config() {
    let on = Settings::resolve(&cfg(&[]), &Overrides::default()).unwrap();
    assert!(on.update_tracker);
    let c = cfg(&[("teleos.updateTracker", "false")]);
    assert!(
        !Settings::resolve(&c, &Overrides::default())
            .unwrap()
            .update_tracker
    );
    let flags = Overrides {
        update_tracker: Some(false),
        ..Default::default()
    };
    assert!(!Settings::resolve(&cfg(&[]), &flags).unwrap().update_tracker);
}

#[test]
fn agent_command_implies_custom() {
    let c = cfg(&[("teleos.agentCommand", "my-agent --fast")]);
    let s = Settings::resolve(&c, &Overrides::default()).unwrap();
    assert_eq!(s.agent, "custom");
    let err =
        Settings::resolve(&cfg(&[("teleos.agent", "custom")]), &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("custom"));
}
