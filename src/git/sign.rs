//! Signing the commits git-teleos writes, as git does with `commit.gpgsign=true`
//! (git's `gpg-interface.c`):
//!
//! - `gpg.format=openpgp` (default) and `x509`: the commit buffer goes on stdin to
//!   `<program> --status-fd=2 -bsau <key>` (program `gpg.program` / `gpg.openpgp.program`, else
//!   `gpg`; `gpg.x509.program`, else `gpgsm`); the signature comes on stdout and must be
//!   confirmed by a `[GNUPG:] SIG_CREATED` line on the status fd.
//! - `gpg.format=ssh`: the buffer goes to a temporary file, then
//!   `<program> -Y sign -n git -f <key file> [-U] <file>` (program `gpg.ssh.program`, else
//!   `ssh-keygen`) writes `<file>.sig`. A literal key (`key::…` or `ssh-…`) is written to a
//!   temporary file and `-U` added.
//! - The key is `user.signingkey`; for openpgp/x509 without it, the committer's
//!   `Name <email>` (as git). `gpg.ssh.defaultKeyCommand` is not supported: set the key.
//!
//! The signature goes into the `gpgsig` header (`gpgsig-sha256` in SHA-256 repositories). When
//! signing is asked for and fails, the commit is not written: nothing unsigned lands silently.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gix::objs::WriteTo;
use gix::Repository;

use crate::error::{Error, Result};
use crate::process::{Cmd, Output};

/// How long a signer may take (it may ask for a passphrase through its agent).
const SIGN_TIMEOUT: Duration = Duration::from_secs(300);

/// Sign `commit` in place when the repository asks for signed commits.
pub(crate) fn sign_commit_if_configured(
    repo: &Repository,
    commit: &mut gix::objs::Commit,
) -> Result<()> {
    let config = repo.config_snapshot();
    if !config.boolean("commit.gpgsign").unwrap_or(false) {
        return Ok(());
    }
    let mut payload = Vec::new();
    commit
        .write_to(&mut payload)
        .map_err(|e| Error::git(format!("cannot encode the commit to sign: {e}")))?;
    let format = config
        .string("gpg.format")
        .map(|v| v.to_string())
        .unwrap_or_else(|| "openpgp".into());
    let key = config
        .string("user.signingkey")
        .map(|v| v.to_string())
        .filter(|k| !k.is_empty());
    let program = |keys: &[&str], default: &str| -> String {
        keys.iter()
            .find_map(|k| config.string(*k).map(|v| v.to_string()))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let signature = match format.as_str() {
        "openpgp" | "x509" => {
            let program = if format == "x509" {
                program(&["gpg.x509.program"], "gpgsm")
            } else {
                program(&["gpg.openpgp.program", "gpg.program"], "gpg")
            };
            let key = match key {
                Some(k) => k,
                None => {
                    let c = super::identity::committer(repo)?;
                    format!("{} <{}>", c.name, c.email)
                }
            };
            sign_gpg(&program, &key, payload)?
        }
        "ssh" => {
            let program = program(&["gpg.ssh.program"], "ssh-keygen");
            let key = key.ok_or_else(|| {
                sign_error(
                    "user.signingKey needs to be set for ssh signing".into(),
                    "set it: git config user.signingkey ~/.ssh/id_ed25519.pub",
                )
            })?;
            sign_ssh(&program, &key, &payload)?
        }
        other => {
            return Err(Error::Config {
                key: "gpg.format".into(),
                value: other.into(),
                reason: "expected openpgp, x509 or ssh".into(),
            })
        }
    };
    let header = if repo.object_hash() == gix::hash::Kind::Sha1 {
        "gpgsig"
    } else {
        "gpgsig-sha256"
    };
    // git writes the signature as the header's value, one continuation line per line.
    let value = signature.trim_end_matches('\n').replace("\r\n", "\n");
    commit.extra_headers.push((header.into(), value.into()));
    Ok(())
}

fn sign_error(message: String, hint: &str) -> Error {
    Error::Setup {
        message: format!("cannot sign the commit (commit.gpgsign): {message}"),
        hints: vec![
            hint.to_string(),
            "commit.gpgsign is true, so git-teleos lands no commit it could not sign; the work is kept on its branches and refs".into(),
        ],
    }
}

/// Run a signer through the process module (own process group, `GIT_*` scrubbed, killed with
/// its group after [`SIGN_TIMEOUT`]). `failed` turns the reason into the error to return.
fn run_signer(
    program: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
    failed: &dyn Fn(String) -> Error,
) -> Result<Output> {
    let mut cmd = Cmd::new(program).args(args).timeout(SIGN_TIMEOUT);
    if let Some(bytes) = stdin {
        cmd = cmd.stdin(bytes);
    }
    let out = cmd.run().map_err(|e| failed(e.to_string()))?;
    if out.stopped.is_some() {
        return Err(failed(format!("no answer in {} s", SIGN_TIMEOUT.as_secs())));
    }
    Ok(out)
}

fn sign_gpg(program: &str, key: &str, payload: Vec<u8>) -> Result<String> {
    let hint = "check gpg.program / gpg.x509.program and user.signingkey, and that the key can sign (git commit -S)";
    let failed =
        |why: String| sign_error(format!("{program} failed to sign the data: {why}"), hint);
    let out = run_signer(
        program,
        &["--status-fd=2", "-bsau", key],
        Some(payload),
        &failed,
    )?;
    let stderr = out.stderr_text();
    // git's test: a `[GNUPG:] SIG_CREATED ` line on the status fd, whatever the exit code says.
    let created = stderr
        .lines()
        .any(|l| l.starts_with("[GNUPG:] SIG_CREATED "));
    let signature = out.stdout_text();
    if !out.success() || !created || signature.trim().is_empty() {
        return Err(failed(signer_said(&stderr)));
    }
    Ok(signature)
}

fn sign_ssh(program: &str, key: &str, payload: &[u8]) -> Result<String> {
    let hint =
        "check gpg.ssh.program and user.signingkey, and that the key can sign (git commit -S)";
    let failed =
        |why: String| sign_error(format!("{program} failed to sign the data: {why}"), hint);
    let literal = key
        .strip_prefix("key::")
        .or_else(|| key.starts_with("ssh-").then_some(key));
    let key_file = match literal {
        Some(k) => Some(TempFile::create(".git_signing_key_tmp", k.as_bytes())?),
        None => None,
    };
    let key_path = match &key_file {
        Some(f) => f.path.clone(),
        None => expand_home(key),
    };
    let buffer = TempFile::create(".git_signing_buffer_tmp", payload)?;
    let sig_path = PathBuf::from(format!("{}.sig", buffer.path.display()));
    let _sig = TempFile {
        path: sig_path.clone(),
    };
    let key_arg = key_path.to_string_lossy().into_owned();
    let buffer_arg = buffer.path.to_string_lossy().into_owned();
    let mut args = vec!["-Y", "sign", "-n", "git", "-f", key_arg.as_str()];
    if literal.is_some() {
        args.push("-U");
    }
    args.push(buffer_arg.as_str());
    let out = run_signer(program, &args, None, &failed)?;
    if !out.success() {
        let stderr = out.stderr_text();
        return Err(failed(if stderr.contains("usage:") {
            "ssh-keygen -Y sign is needed for ssh signing (available in openssh version 8.2p1+)"
                .into()
        } else {
            signer_said(&stderr)
        }));
    }
    let signature = std::fs::read_to_string(&sig_path).map_err(|e| {
        failed(format!(
            "cannot read the signature {}: {e}",
            sig_path.display()
        ))
    })?;
    if signature.trim().is_empty() {
        return Err(failed("it wrote an empty signature".into()));
    }
    Ok(signature)
}

/// What the signer printed, without gpg's status lines, on one line.
fn signer_said(stderr: &str) -> String {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("[GNUPG:]"))
        .take(5)
        .collect();
    if said.is_empty() {
        "(no output from the signer)".into()
    } else {
        said.join("; ")
    }
}

/// `~/…` as git's `interpolate_path` reads it.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// A private temporary file, removed on drop.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn create(prefix: &str, bytes: &[u8]) -> Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "{prefix}{}-{n}-{}",
            std::process::id(),
            crate::manifest::now_unix()
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let file_guard = TempFile { path };
        file.write_all(bytes)
            .map_err(|e| Error::io(format!("writing {}", file_guard.path.display()), e))?;
        Ok(file_guard)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
