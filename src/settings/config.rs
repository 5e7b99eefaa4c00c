//! Typed reads of raw `git config` values: each fails with the key's name and the reason,
//! never a silent default.

use std::path::PathBuf;

use super::HtmlReport;
use crate::error::{Error, Result};

/// Where a setting's raw values come from. Implemented for gix's config snapshot; tests use maps.
pub trait ConfigSource {
    /// The last value of `key` (git's "last one wins").
    fn get(&self, key: &str) -> Option<String>;
    /// Every value of a multi-valued `key`, in order.
    fn get_all(&self, key: &str) -> Vec<String>;
}

impl ConfigSource for gix::config::Snapshot<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.plumbing()
            .string(key)
            .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
    }
    fn get_all(&self, key: &str) -> Vec<String> {
        self.plumbing()
            .strings(key)
            .unwrap_or_default()
            .into_iter()
            .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
            .collect()
    }
}

impl ConfigSource for std::collections::BTreeMap<String, Vec<String>> {
    fn get(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| v.last().cloned())
    }
    fn get_all(&self, key: &str) -> Vec<String> {
        self.get(key).cloned().unwrap_or_default()
    }
}

/// Typed reads of raw config strings, each failing with the key's name.
pub(super) struct Reader<'a>(pub(super) &'a dyn ConfigSource);

impl Reader<'_> {
    pub(super) fn string(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|v| !v.trim().is_empty())
    }

    fn bad(key: &str, value: &str, reason: &str) -> Error {
        Error::Config {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(super) fn fraction(&self, key: &str) -> Result<Option<f64>> {
        self.parse(key, "expected a number from 0 to 1", |v| {
            v.parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f) && f.is_finite())
        })
    }

    pub(super) fn hours(&self, key: &str) -> Result<Option<f64>> {
        self.parse(key, "expected a number of hours (0 or more)", |v| {
            v.parse::<f64>().ok().filter(|f| *f >= 0.0 && f.is_finite())
        })
    }

    pub(super) fn non_negative(&self, key: &str) -> Result<Option<f64>> {
        self.parse(key, "expected a number of seconds (0 or more)", |v| {
            v.parse::<f64>()
                .ok()
                .filter(|f| *f >= 0.0 && *f < 1e9 && f.is_finite())
        })
    }

    pub(super) fn count(&self, key: &str, min: usize, max: usize) -> Result<Option<usize>> {
        let reason = format!("expected a whole number from {min} to {max}");
        self.parse(key, &reason, |v| {
            v.parse::<usize>().ok().filter(|n| (min..=max).contains(n))
        })
    }

    /// Git's boolean spellings; a key present without a value (`[teleos] recursive`) is true.
    pub(super) fn boolean(&self, key: &str) -> Result<Option<bool>> {
        self.parse(key, "expected a boolean (true/false)", |v| {
            match v.to_ascii_lowercase().as_str() {
                "" | "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            }
        })
    }

    /// A boolean (true: the default folder), or a folder.
    pub(super) fn html_report(&self, key: &str) -> Result<Option<HtmlReport>> {
        let Some(v) = self.0.get(key) else {
            return Ok(None);
        };
        Ok(match v.trim().to_ascii_lowercase().as_str() {
            "" | "true" | "yes" | "on" | "1" => Some(HtmlReport::DefaultDir),
            "false" | "no" | "off" | "0" => None,
            _ => Some(HtmlReport::Dir(PathBuf::from(v.trim()))),
        })
    }

    pub(super) fn choice(&self, key: &str, allowed: &[&str]) -> Result<Option<String>> {
        let reason = format!("expected one of: {}", allowed.join(", "));
        self.parse(key, &reason, |v| {
            let v = v.to_ascii_lowercase();
            allowed.contains(&v.as_str()).then_some(v)
        })
    }

    pub(super) fn parse<T>(
        &self,
        key: &str,
        reason: &str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(raw) => f(raw.trim())
                .map(Some)
                .ok_or_else(|| Self::bad(key, &raw, reason)),
        }
    }
}
