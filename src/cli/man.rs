//! The man page, generated from the clap definitions plus the configuration keys and exit codes.
//! `tests/it/man.rs` keeps `man/git-teleos.1` in sync with this.

use std::io::Write;

use crate::settings::CONFIG_KEYS;

/// Escape text for roff: backslashes, hyphens (so they stay ASCII), and leading control chars.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn arg_synopsis(a: &clap::Arg) -> String {
    let value = a
        .get_value_names()
        .and_then(|v| v.first().map(|n| n.to_string()))
        .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
    let takes_value = a.get_action().takes_values();
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(format!("\\fB\\-{s}\\fR"));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", roff(l)));
    }
    if names.is_empty() {
        return format!("\\fI{}\\fR", roff(&value));
    }
    let mut s = names.join(", ");
    if takes_value {
        s.push_str(&format!(" \\fI{}\\fR", roff(&value)));
    }
    s
}

fn write_args(out: &mut Vec<u8>, cmd: &clap::Command) -> std::io::Result<()> {
    for a in cmd.get_arguments() {
        if a.is_hide_set() || a.is_global_set() && cmd.get_name() != "git-teleos" {
            continue;
        }
        writeln!(out, ".TP\n{}", arg_synopsis(a))?;
        let help = a
            .get_long_help()
            .or_else(|| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        writeln!(out, "{}", roff(&help))?;
        let values: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() && values.len() < 12 {
            writeln!(out, "Values: {}.", roff(&values.join(", ")))?;
        }
    }
    Ok(())
}

/// Render `git-teleos(1)`.
pub fn render() -> Vec<u8> {
    let cmd = super::command();
    let mut out = Vec::new();
    // Writing to a Vec cannot fail; the Results below are only the Write trait's signature.
    let _ = write_page(&mut out, &cmd);
    out
}

fn write_page(out: &mut Vec<u8>, cmd: &clap::Command) -> std::io::Result<()> {
    let version = cmd.get_version().unwrap_or("");
    writeln!(
        out,
        ".TH GIT\\-TELEOS 1 \"\" \"git-teleos {version}\" \"Git Manual\""
    )?;
    writeln!(out, ".SH NAME")?;
    writeln!(
        out,
        "git\\-teleos \\- {}",
        roff(&cmd.get_about().map(|a| a.to_string()).unwrap_or_default())
    )?;
    writeln!(out, ".SH SYNOPSIS")?;
    writeln!(out, "\\fBgit teleos\\fR [\\fB\\-C\\fR \\fIPATH\\fR] [\\fB\\-\\-color\\fR \\fIWHEN\\fR] [\\fB\\-q\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]")?;
    writeln!(out, ".SH DESCRIPTION")?;
    writeln!(
        out,
        "{}",
        roff(
            &cmd.get_long_about()
                .map(|a| a.to_string())
                .unwrap_or_default()
        )
    )?;
    writeln!(out, ".SH GLOBAL OPTIONS")?;
    write_args(out, cmd)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = sub.get_name();
        writeln!(out, ".SS \"git teleos {}\"", roff(name))?;
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        writeln!(out, "{}", roff(&about))?;
        write_args(out, sub)?;
        for nested in sub.get_subcommands() {
            writeln!(
                out,
                ".TP\n\\fBgit teleos {} {}\\fR\n{}",
                roff(name),
                roff(nested.get_name()),
                roff(
                    &nested
                        .get_about()
                        .map(|a| a.to_string())
                        .unwrap_or_default()
                )
            )?;
        }
    }
    writeln!(out, ".SH CONFIGURATION")?;
    writeln!(
        out,
        "Settings are read with \\fBgit config\\fR (system, global, repository and worktree scopes), \
then \\fBGIT_CONFIG_COUNT\\fR/\\fBGIT_CONFIG_KEY_\\fR\\fIn\\fR/\\fBGIT_CONFIG_VALUE_\\fR\\fIn\\fR, then \
\\fBgit \\-c\\fR \\fIkey\\fR=\\fIvalue\\fR (as in \\fBgit \\-c teleos.agent=codex teleos close\\fR), the last \
one winning. A command\\-line flag wins over the configuration, which wins over the built\\-in \
default. A malformed value is an error naming the key."
    )?;
    for (key, help) in CONFIG_KEYS {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(key), roff(help))?;
    }
    writeln!(out, ".SH EXIT STATUS")?;
    for (code, meaning) in [
        ("0", "Success: every selected story completed (or nothing needed doing)."),
        ("1", "The command ran but some work did not complete: a story was partial, failed, conflicted, failed its gates, was ejected by the integration gate, or the work did not land."),
        ("2", "Usage or setup error: bad flags or configuration, not a repository, no stories folder, agent not logged in. Nothing was changed."),
        ("3", "Internal error: a bug in git-teleos (for example a panic) stopped the command. A panic while one story runs ends only that story, as an error, and the batch goes on."),
        ("128+n", "Stopped by signal n (130 for Ctrl-C). A second Ctrl-C stops at once, without waiting for the agents or writing the report."),
    ] {
        writeln!(out, ".TP\n\\fB{code}\\fR\n{}", roff(meaning))?;
    }
    writeln!(out, ".SH FILES")?;
    writeln!(out, ".TP\n\\fB.claude/worktrees/manifest.json\\fR\nSessions of parallel runs, shared with other tools; always updated under an exclusive lock.")?;
    writeln!(out, ".SH SEE ALSO")?;
    writeln!(out, "\\fBgit\\-worktree\\fR(1), \\fBgit\\-config\\fR(1)")?;
    Ok(())
}
