//! Settings given as `git -c key=value teleos …`.
//!
//! git hands `-c` (and `--config-env`) settings to the commands it runs in
//! `GIT_CONFIG_PARAMETERS`, quoted (git's `config.c`, `parse_config_env_list`, and `quote.c`,
//! `sq_dequote_step`): `'key'='value'` entries separated by spaces, `'key'=` for a key without a
//! value, and the older `'key=value'` form; inside the quotes `'` is written `'\''` and `!` as
//! `'\!'`. `GIT_CONFIG_COUNT` / `GIT_CONFIG_KEY_<n>` / `GIT_CONFIG_VALUE_<n>` carry more.
//!
//! gix reads the `GIT_CONFIG_COUNT` family itself (its `open` permissions allow the
//! environment by default) but not `GIT_CONFIG_PARAMETERS`; these are parsed here and given to
//! gix as command-line overrides (`open::Options::cli_overrides`), which gix applies after the
//! environment ones. That is git's order: both above every config file, `-c` last; the
//! program's own flags are above both (`settings`).

use crate::error::{Error, Result};

/// The environment variable git fills from `-c`.
pub const PARAMETERS_VAR: &str = "GIT_CONFIG_PARAMETERS";

/// `(key, value)` pairs of a `GIT_CONFIG_PARAMETERS` value, in order; `None` is a key without
/// a value (`git -c teleos.recursive`), which git reads as true.
pub fn parse_parameters(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (word, after) = dequote_step(rest)?;
        match after.chars().next() {
            // The older form: one quoted `key=value`.
            None | Some(' ' | '\t' | '\n') => {
                let (key, value) = match word.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (word, None),
                };
                out.push((key, value));
                rest = after;
            }
            Some('=') => {
                let after = &after[1..];
                if after.starts_with('\'') {
                    let (value, after) = dequote_step(after)?;
                    if !after.is_empty() && !after.starts_with([' ', '\t', '\n']) {
                        return None;
                    }
                    out.push((word, Some(value)));
                    rest = after;
                } else if after.is_empty() || after.starts_with([' ', '\t', '\n']) {
                    out.push((word, None));
                    rest = after;
                } else {
                    return None;
                }
            }
            Some(_) => return None,
        }
        rest = rest.trim_start();
    }
    Some(out)
}

/// One single-quoted word at the start of `s` and what follows it; `'\''` and `'\!'` inside
/// stand for `'` and `!`.
fn dequote_step(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('\'')?;
    let mut word = String::new();
    loop {
        let close = rest.find('\'')?;
        word.push_str(&rest[..close]);
        rest = &rest[close + 1..];
        match rest.as_bytes() {
            [b'\\', c @ (b'\'' | b'!'), b'\'', ..] => {
                word.push(*c as char);
                rest = &rest[3..];
            }
            _ => return Some((word, rest)),
        }
    }
}

/// The `-c` settings of this process's environment, as gix overrides (`key=value`, or `key`
/// alone for a key without a value). Empty when git gave none.
pub fn cli_overrides() -> Result<Vec<String>> {
    let Some(raw) = std::env::var_os(PARAMETERS_VAR) else {
        return Ok(Vec::new());
    };
    let text = raw.to_str().ok_or_else(|| {
        Error::usage_hint(
            format!("{PARAMETERS_VAR} is not valid UTF-8"),
            "give the setting with git config instead of git -c",
        )
    })?;
    let pairs = parse_parameters(text).ok_or_else(|| {
        Error::usage_hint(
            format!("{PARAMETERS_VAR} is malformed: {text}"),
            "git sets it from git -c key=value; unset it if it was set by hand",
        )
    })?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn reads_what_git_writes() {
        // Exactly what git 2.47 puts there for
        // git -c x.y=param -c x.z -c "x.w=it's !" -c x.e= -c Sect.Sub.Key=V
        let text = r"'x.y'='param' 'x.z'= 'x.w'='it'\''s '\!'' 'x.e'='' 'Sect.Sub.Key'='V'";
        assert_eq!(
            parse_parameters(text).unwrap(),
            pairs(&[
                ("x.y", Some("param")),
                ("x.z", None),
                ("x.w", Some("it's !")),
                ("x.e", Some("")),
                ("Sect.Sub.Key", Some("V")),
            ])
        );
    }

    #[test]
    fn reads_the_older_form() {
        assert_eq!(
            parse_parameters("'teleos.agent=codex' 'teleos.recursive'").unwrap(),
            pairs(&[("teleos.agent", Some("codex")), ("teleos.recursive", None)])
        );
        assert_eq!(
            parse_parameters("'a.b=x=y'").unwrap(),
            pairs(&[("a.b", Some("x=y"))])
        );
    }

    #[test]
    fn empty_and_malformed() {
        assert_eq!(parse_parameters("").unwrap(), vec![]);
        assert_eq!(parse_parameters("  ").unwrap(), vec![]);
        for bad in [
            "teleos.agent=codex",
            "'unterminated",
            "'a.b'x",
            "'a.b'='c'd",
            "'a.b'=c",
        ] {
            assert_eq!(parse_parameters(bad), None, "{bad}");
        }
    }
}
