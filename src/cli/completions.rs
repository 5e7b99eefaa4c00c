//! `git teleos completions <shell>`: shell completion scripts from the clap definition.

use clap_complete::Shell;

use crate::error::Error;

/// Print a completion script for a shell.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> Result<u8, Error> {
    let mut cmd = super::command();
    // Completions attach to the binary git runs (`git-teleos`); git's own completion finds
    // `git teleos` subcommands through `_git_teleos` in bash when the script is sourced.
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "git-teleos", &mut out);
    use std::io::Write;
    std::io::stdout().write_all(&out).map_err(super::out_err)?;
    Ok(0)
}
