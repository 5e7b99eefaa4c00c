//! The manifest's JSON schema, compatible with the seed workflow:
//! `{"sessions": {"<sid>": {"pid", "started_at", "workflow", "integration_branch",
//! "worktrees": [{"path", "branch"}], "status"}}}`.
//!
//! Reading is lenient and writing is faithful, because other tools share this file:
//! - fields we do not know, at every level, are kept and written back unchanged;
//! - a known field whose value we cannot understand (say `"worktrees": "n/a"`) is kept verbatim
//!   too, and reads as absent;
//! - `pid` may be a number or a numeric string (the seed writes the output of `echo $$`),
//!   `started_at` an RFC 3339 string or Unix seconds or milliseconds; a value read that way is
//!   written back spelled exactly as it was unless it was changed, and ours are written as a
//!   number and as `YYYY-MM-DDTHH:MM:SSZ`.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `workflow` value of the seed and of our sessions.
pub const WORKFLOW: &str = "story-closer";
/// The `tool` value of our sessions.
pub const TOOL: &str = "git-teleos";
/// `status` of a session whose batch is running.
pub const STATUS_ACTIVE: &str = "active";
/// `status` of a session stopped by Ctrl-C, kept for `--resume`.
pub const STATUS_INTERRUPTED: &str = "interrupted";

/// The whole file. Sessions are keyed by session id (sorted when written; JSON object order
/// carries no meaning here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub sessions: BTreeMap<String, Session>,
    /// Top-level fields we do not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One session, ours or another tool's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    pub pid: Option<i32>,
    /// Unix seconds.
    pub started_at: Option<i64>,
    pub workflow: Option<String>,
    pub integration_branch: Option<String>,
    pub worktrees: Vec<WorktreeEntry>,
    pub status: Option<String>,
    /// Host that wrote the session: its pid means something only there.
    pub host: Option<String>,
    /// Process groups of the agents running for this session, so clean-up can stop them.
    pub agent_pgids: Vec<i32>,
    /// `"git-teleos"` for our sessions.
    pub tool: Option<String>,
    /// Stories this session has claimed: no other live session starts an agent on them.
    pub claimed_stories: Vec<String>,
    /// Fields we do not know, and known ones whose value we could not read, kept verbatim.
    pub extra: Map<String, Value>,
    /// How `pid` and `started_at` were spelled when read.
    pub spelling: Spelling,
}

/// One worktree of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorktreeEntry {
    pub path: Option<String>,
    pub branch: Option<String>,
    /// The story an agent is working on in this worktree right now.
    pub story: Option<String>,
    pub extra: Map<String, Value>,
}

/// The original JSON of `pid` and `started_at`, so that a foreign session is written back as its
/// tool wrote it (a numeric-string pid stays a string). Never part of equality.
#[derive(Debug, Clone, Default)]
pub struct Spelling {
    pid: Option<(i32, Value)>,
    started_at: Option<(i64, Value)>,
    /// `worktrees` was in the file (even empty), so it is written back even when empty.
    had_worktrees: bool,
}

impl PartialEq for Spelling {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Session {
    /// A session of ours for this process, started now, `status: "active"`.
    pub fn new(integration_branch: impl Into<String>, worktrees: Vec<WorktreeEntry>) -> Session {
        Session {
            pid: i32::try_from(std::process::id()).ok(),
            started_at: Some(crate::manifest::now_unix()),
            workflow: Some(WORKFLOW.to_string()),
            integration_branch: Some(integration_branch.into()),
            worktrees,
            status: Some(STATUS_ACTIVE.to_string()),
            host: Some(crate::manifest::hostname()),
            tool: Some(TOOL.to_string()),
            ..Session::default()
        }
    }

    /// `started_at` in Unix seconds, if it was present and readable.
    pub fn started_at_unix(&self) -> Option<i64> {
        self.started_at
    }

    /// Whether the session was written by git-teleos.
    pub fn is_ours(&self) -> bool {
        self.tool.as_deref() == Some(TOOL)
    }

    /// `pid` is present in the file but could not be read as a process id.
    pub fn pid_unreadable(&self) -> bool {
        self.pid.is_none() && self.extra.contains_key("pid")
    }

    /// `started_at` is present in the file but could not be read as a time.
    pub fn started_at_unreadable(&self) -> bool {
        self.started_at.is_none() && self.extra.contains_key("started_at")
    }
}

impl WorktreeEntry {
    pub fn new(path: impl Into<String>, branch: impl Into<String>) -> WorktreeEntry {
        WorktreeEntry {
            path: Some(path.into()),
            branch: Some(branch.into()),
            ..WorktreeEntry::default()
        }
    }
}

/// Removes `key` from `map` and returns it typed, or leaves it in place (to be written back
/// verbatim) when it is not a `T`.
fn take<T: DeserializeOwned>(map: &mut Map<String, Value>, key: &str) -> Option<T> {
    let value = map.get(key)?;
    let typed = T::deserialize(value).ok()?;
    map.remove(key);
    Some(typed)
}

/// Like [`take`], with a parser of our own; also returns the original value.
fn take_with<T>(
    map: &mut Map<String, Value>,
    key: &str,
    parse: impl Fn(&Value) -> Option<T>,
) -> Option<(T, Value)> {
    let parsed = parse(map.get(key)?)?;
    let original = map.remove(key)?;
    Some((parsed, original))
}

/// A positive pid from a number or a numeric string. Zero and negatives are refused: `kill(0)`
/// and `kill(-n)` address process groups, never one process.
pub fn parse_pid(value: &Value) -> Option<i32> {
    let n = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    i32::try_from(n).ok().filter(|&p| p > 0)
}

/// Unix seconds from an RFC 3339 / ISO 8601 string or a number of seconds or milliseconds
/// (numbers past year 5000 in seconds are taken as milliseconds, as JavaScript's `Date.now()`).
pub fn parse_time(value: &Value) -> Option<i64> {
    const MILLIS_THRESHOLD: f64 = 100_000_000_000.0;
    let from_number = |n: f64| -> Option<i64> {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let secs = if n >= MILLIS_THRESHOLD { n / 1000.0 } else { n };
        Some(secs.floor() as i64)
    };
    match value {
        Value::Number(n) => from_number(n.as_f64()?),
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<f64>() {
                Ok(n) => from_number(n),
                Err(_) => parse_rfc3339(s),
            }
        }
        _ => None,
    }
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.fff…]]][Z|±HH[:MM]]`; no offset means UTC.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (month, day) = (num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let mut secs = crate::time::days_from_civil(year, month, day) * 86_400;
    let mut i = 10;
    if i == b.len() {
        return Some(secs);
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    let hour = num(i + 1, 2)?;
    if b.get(i + 3) != Some(&b':') {
        return None;
    }
    let minute = num(i + 4, 2)?;
    i += 6;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = num(i + 1, 2)?;
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            i += digits; // sub-second precision is not kept
        }
    }
    // 60 allows a leap second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    secs += hour * 3600 + minute * 60 + second;
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let om = match &b[i + 3..] {
                [] => 0,
                [b':', ..] if b.len() == i + 6 => num(i + 4, 2)?,
                [_, _] => num(i + 3, 2)?,
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    Some(secs - offset)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
pub fn format_time(unix: i64) -> String {
    crate::time::iso8601(unix)
}

impl<'de> Deserialize<'de> for Session {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A session that is not an object is a wrong-typed manifest: that error stays.
        let mut map = Map::<String, Value>::deserialize(d)?;
        let pid = take_with(&mut map, "pid", parse_pid);
        let started_at = take_with(&mut map, "started_at", parse_time);
        let had_worktrees = map.contains_key("worktrees");
        Ok(Session {
            pid: pid.as_ref().map(|(p, _)| *p),
            started_at: started_at.as_ref().map(|(t, _)| *t),
            workflow: take(&mut map, "workflow"),
            integration_branch: take(&mut map, "integration_branch"),
            worktrees: take(&mut map, "worktrees").unwrap_or_default(),
            status: take(&mut map, "status"),
            host: take(&mut map, "host"),
            agent_pgids: take(&mut map, "agent_pgids").unwrap_or_default(),
            tool: take(&mut map, "tool"),
            claimed_stories: take(&mut map, "claimed_stories").unwrap_or_default(),
            extra: map,
            spelling: Spelling {
                pid,
                started_at,
                had_worktrees,
            },
        })
    }
}

impl Serialize for Session {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(None)?;
        let mut written: Vec<&str> = Vec::new();
        // Writes a known field and remembers it so a verbatim copy in `extra` is not doubled.
        macro_rules! field {
            ($key:literal, $value:expr) => {{
                out.serialize_entry($key, $value)?;
                written.push($key);
            }};
        }
        if let Some(pid) = self.pid {
            match &self.spelling.pid {
                Some((read, original)) if *read == pid => field!("pid", original),
                _ => field!("pid", &pid),
            }
        }
        if let Some(t) = self.started_at {
            match &self.spelling.started_at {
                Some((read, original)) if *read == t => field!("started_at", original),
                _ => field!("started_at", &format_time(t)),
            }
        }
        if let Some(v) = &self.workflow {
            field!("workflow", v);
        }
        if let Some(v) = &self.integration_branch {
            field!("integration_branch", v);
        }
        // The seed always writes `worktrees`, and so do we; an empty list is left out only for a
        // session read without one, and an unreadable original stands in when there is one.
        let keep_empty = self.is_ours() || self.spelling.had_worktrees;
        if !self.worktrees.is_empty() || (keep_empty && !self.extra.contains_key("worktrees")) {
            field!("worktrees", &self.worktrees);
        }
        if let Some(v) = &self.status {
            field!("status", v);
        }
        if let Some(v) = &self.host {
            field!("host", v);
        }
        if !self.agent_pgids.is_empty() {
            field!("agent_pgids", &self.agent_pgids);
        }
        if let Some(v) = &self.tool {
            field!("tool", v);
        }
        if !self.claimed_stories.is_empty() {
            field!("claimed_stories", &self.claimed_stories);
        }
        for (k, v) in &self.extra {
            if !written.contains(&k.as_str()) {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for WorktreeEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = Map::<String, Value>::deserialize(d)?;
        Ok(WorktreeEntry {
            path: take(&mut map, "path"),
            branch: take(&mut map, "branch"),
            story: take(&mut map, "story"),
            extra: map,
        })
    }
}

impl Serialize for WorktreeEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(None)?;
        let mut written: Vec<&str> = Vec::new();
        for (key, value) in [
            ("path", &self.path),
            ("branch", &self.branch),
            ("story", &self.story),
        ] {
            if let Some(v) = value {
                out.serialize_entry(key, v)?;
                written.push(key);
            }
        }
        for (k, v) in &self.extra {
            if !written.contains(&k.as_str()) {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_parse_in_every_spelling() {
        let base = 1_767_225_600; // 2026-01-01T00:00:00Z
        for (v, want) in [
            (json!("2026-01-01T00:00:00Z"), base),
            (json!("2026-01-01T00:00:00.123Z"), base),
            (json!("2026-01-01T00:00:00.123+02:00"), base - 7200),
            (json!("2026-01-01T00:00:00-0130"), base + 5400),
            (json!("2026-01-01 00:00:00"), base),
            (json!("2026-01-01T00:00"), base),
            (json!("2026-01-01"), base),
            (json!(base), base),
            (json!(base * 1000 + 999), base),
            (json!(base as f64 + 0.5), base),
            (json!("1767225600"), base),
        ] {
            assert_eq!(parse_time(&v), Some(want), "{v}");
        }
        for bad in [
            json!("yesterday"),
            json!("2026-13-01"),
            json!("2026-02-30"),
            json!("2026-01-01T25:00:00Z"),
            json!("2026-01-01T00:00:00Zjunk"),
            json!(-5),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(parse_time(&bad), None, "{bad}");
        }
    }

    #[test]
    fn format_inverts_parse() {
        for t in [0, 951_782_400, 1_767_225_600, 4_102_444_799] {
            let s = format_time(t);
            assert_eq!(parse_time(&json!(s)), Some(t), "{s}");
        }
        assert_eq!(format_time(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(format_time(951_825_845), "2000-02-29T12:04:05Z");
    }

    #[test]
    fn pids_parse_leniently_but_never_as_groups() {
        assert_eq!(parse_pid(&json!(1234)), Some(1234));
        assert_eq!(parse_pid(&json!(" 1234\n")), Some(1234));
        for bad in [
            json!(0),
            json!(-1),
            json!("-5"),
            json!("abc"),
            json!(1.5),
            json!(1u64 << 40),
        ] {
            assert_eq!(parse_pid(&bad), None, "{bad}");
        }
    }

    #[test]
    fn unreadable_known_fields_round_trip_verbatim() {
        let raw = json!({"pid": "abc", "started_at": {"when": "now"}, "worktrees": "n/a",
                         "status": 7, "x": 1});
        let s: Session = serde_json::from_value(raw.clone()).unwrap();
        assert!(s.pid_unreadable() && s.started_at_unreadable());
        assert_eq!(s.status, None);
        assert_eq!(serde_json::to_value(&s).unwrap(), raw);
    }

    #[test]
    fn changed_values_are_written_in_our_spelling() {
        let raw = json!({"pid": "1234", "started_at": 1_767_225_600_000_i64});
        let mut s: Session = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), raw);
        s.pid = Some(99);
        s.started_at = Some(1_767_225_601);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["pid"], json!(99));
        assert_eq!(v["started_at"], json!("2026-01-01T00:00:01Z"));
    }
}
