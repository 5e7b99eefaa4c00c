//! Phases 2–3: selection, running stories sequentially (and in parallel), results.

pub mod claims;
pub mod footprint;
pub mod gate;
pub mod governor;
pub mod names;
pub mod order;
pub mod orphans;
pub mod parallel;
pub mod pool;
pub mod progress;
pub mod remote;
pub mod results;
pub mod resume;
pub mod select;
pub mod sequential;
pub mod setup;
pub mod status;
pub mod timing;
pub mod worker;

use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh 6-lowercase-hex session id (README, "Parallel mode"), from the kernel's random source,
/// falling back to time and pid mixed together.
pub fn new_session_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 3];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !random {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mixed =
            (nanos ^ (u128::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        bytes.copy_from_slice(&mixed.to_le_bytes()[5..8]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub use crate::time::{now_iso8601, today};

/// A scanned story for the unit tests of selection, queues and results: 8 of its 10 tasks
/// done, in `category`, depending on `deps`.
#[cfg(test)]
pub(crate) fn test_story(
    key: &str,
    category: crate::stories::Category,
    deps: &[&str],
) -> crate::stories::Story {
    crate::stories::Story {
        story_key: key.into(),
        path: std::path::PathBuf::from(format!("{key}.md")),
        category,
        total: 10,
        checked: 8,
        unchecked: 2,
        pct_unchecked: 20.0,
        subtasks_total: 0,
        subtasks_unchecked: 0,
        human_validation_tasks: vec![],
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        status: None,
        sprint_status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_six_hex() {
        let a = new_session_id();
        assert_eq!(a.len(), 6);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
