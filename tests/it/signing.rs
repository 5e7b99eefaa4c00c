//! `commit.gpgsign=true` (issue 17, item 2): every commit git-teleos makes that lands on the
//! user's branch is signed as git signs, through `gpg.program` / `gpg.ssh.program`; a signer
//! that fails stops the landing with a clear error and nothing unsigned lands. The signers are
//! stand-in scripts that record their arguments and input and answer as gpg and ssh-keygen do.

use crate::common;

use std::time::Duration;

use common::agent::Claude;
use common::{story, TestRepo};

const DIR: &str = "docs/sprint-artifacts";

/// A stand-in `claude` that holds (before committing) while `<home>/hold` exists, so the test
/// can move `main` meanwhile and make both stories start from the same commit.
fn install_agent(r: &TestRepo) {
    Claude::new()
        .sh(r#"touch "$home/started-$key"
while [ -f "$home/hold" ]; do sleep 0.1; done"#)
        .tick()
        .write_out()
        .sh(r#"nosign=""
[ -f "$home/agent-no-sign" ] && nosign="--no-gpg-sign"
git add out "$file" && git commit -q $nosign -m "teleos: close $key" || exit 1
answer_status"#)
        .install(r);
}

/// A stand-in `gpg`: records its arguments and stdin, prints an armored signature on stdout
/// and `[GNUPG:] SIG_CREATED` on the status fd (2), as `gpg --status-fd=2 -bsau <key>` does.
/// With `<home>/signer-fails` it fails as gpg does without the secret key.
fn install_gpg(r: &TestRepo) -> std::path::PathBuf {
    let script = format!(
        r#"#!/bin/sh
home="{home}"
n=$$
printf '%s\n' "$*" > "$home/signer-args-$n"
cat > "$home/signed-$n"
if [ -f "$home/signer-fails" ]; then
  echo "gpg: skipped \"$3\": No secret key" >&2
  echo "[GNUPG:] INV_SGNR 9 $3" >&2
  echo "gpg: signing failed: No secret key" >&2
  exit 2
fi
echo "[GNUPG:] KEY_CONSIDERED 0123456789ABCDEF0123456789ABCDEF01234567 2" >&2
echo "[GNUPG:] BEGIN_SIGNING H10" >&2
echo "[GNUPG:] SIG_CREATED D 22 10 00 1767225600 0123456789ABCDEF0123456789ABCDEF01234567" >&2
printf -- '-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQQBI0VniavN7wEjRWeJq83vASNFZwUCaVW4AAAKCRABI0Vn\n=fake\n-----END PGP SIGNATURE-----\n'
"#,
        home = r.home.display()
    );
    r.install_script("fake-gpg", &script)
}

/// A stand-in `ssh-keygen -Y sign -n git -f <key> <file>`: writes `<file>.sig`.
fn install_ssh_keygen(r: &TestRepo) -> std::path::PathBuf {
    let script = format!(
        r#"#!/bin/sh
home="{home}"
n=$$
printf '%s\n' "$*" > "$home/signer-args-$n"
for last; do :; done
cp "$last" "$home/signed-$n"
printf -- '-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgfake\n-----END SSH SIGNATURE-----\n' > "$last.sig"
"#,
        home = r.home.display()
    );
    r.install_script("fake-ssh-keygen", &script)
}

/// Turn on `commit.gpgsign` with `format`'s signer `program` (`gpg.program` for openpgp, the
/// default format, else `gpg.format` and `gpg.<format>.program`) and `user.signingkey`.
fn sign_with(r: &TestRepo, format: &str, program: &std::path::Path, key: Option<&str>) {
    let program = program.to_str().unwrap();
    r.git(&["config", "commit.gpgsign", "true"]);
    if format == "openpgp" {
        r.git(&["config", "gpg.program", program]);
    } else {
        r.git(&["config", "gpg.format", format]);
        r.git(&["config", &format!("gpg.{format}.program"), program]);
    }
    if let Some(key) = key {
        r.git(&["config", "user.signingkey", key]);
    }
}

fn repo_with(keys: &[&str]) -> TestRepo {
    let r = TestRepo::new();
    for key in keys {
        r.write(&format!("{DIR}/{key}.md"), &story("Story", 9, 1));
    }
    r.write("user.txt", "mine\n");
    r.commit_all("stories");
    install_agent(&r);
    r
}

fn wait_started(r: &TestRepo, key: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !r.home.join(format!("started-{key}")).exists() {
        assert!(std::time::Instant::now() < deadline, "{key} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a batch of `keys` on as many worktrees; while the agents hold, the user commits on main
/// (so landing needs a merge commit) and both stories start from one commit (so the second
/// merge into integration is a merge commit too).
fn batch_with_merges(r: &TestRepo, keys: &[&str]) -> (i32, String, String) {
    std::fs::write(r.home.join("hold"), "").unwrap();
    let slots = keys.len().to_string();
    let child = r
        .teleos_cmd(&r.root)
        .args(["close", "--all", "--parallel", &slots, "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for k in keys {
        wait_started(r, k);
    }
    r.write("user.txt", "mine, edited while the agents run\n");
    r.git(&[
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-qam",
        "user: meanwhile",
    ]);
    std::fs::remove_file(r.home.join("hold")).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The commit object without its signature header: what git signs and verifies.
fn payload(r: &TestRepo, commit: &str) -> String {
    let raw = r.git(&["cat-file", "commit", commit]) + "\n";
    let mut out = String::new();
    let mut in_sig = false;
    for line in raw.split_inclusive('\n') {
        if line.starts_with("gpgsig ") {
            in_sig = true;
            continue;
        }
        if in_sig && line.starts_with(' ') {
            continue;
        }
        in_sig = false;
        out.push_str(line);
    }
    out
}

/// The signer inputs recorded, with the arguments each came with.
fn signed(r: &TestRepo) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&r.home).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix("signed-") else {
            continue;
        };
        let input = std::fs::read_to_string(entry.path()).unwrap();
        let args = std::fs::read_to_string(r.home.join(format!("signer-args-{n}"))).unwrap();
        out.push((args.trim().to_string(), input));
    }
    out
}

/// The commits git-teleos made on main since `start`.
fn teleos_commits(r: &TestRepo, start: &str) -> Vec<String> {
    r.git(&["log", "--format=%H %s", &format!("{start}..main")])
        .lines()
        .filter(|l| l.contains(" teleos: merge ") || l.contains(" Merge branch 'integration-"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn openpgp_signs_every_commit_git_teleos_lands() {
    let r = repo_with(&["1-1-a", "1-2-b"]);
    let gpg = install_gpg(&r);
    sign_with(&r, "openpgp", &gpg, Some("ABCDEF0123456789"));
    let start = r.git(&["rev-parse", "main"]);
    let (code, stdout, stderr) = batch_with_merges(&r, &["1-1-a", "1-2-b"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("landed on main"), "{stdout}");
    let ours = teleos_commits(&r, &start);
    // The second story's merge into integration, and the landing merge.
    assert_eq!(ours.len(), 2, "{}", r.git(&["log", "--format=%s", "main"]));
    let records = signed(&r);
    for c in &ours {
        let raw = r.git(&["cat-file", "-p", c]);
        assert!(
            raw.contains("gpgsig -----BEGIN PGP SIGNATURE-----"),
            "{c} is not signed:\n{raw}"
        );
        let (args, _) = records
            .iter()
            .find(|(_, input)| *input == payload(&r, c))
            .unwrap_or_else(|| panic!("the signer never saw {c}'s payload:\n{raw}"));
        assert_eq!(args, "--status-fd=2 -bsau ABCDEF0123456789");
    }
}

#[test]
fn ssh_signing_uses_the_key_file_and_ssh_keygen() {
    let r = repo_with(&["1-1-a"]);
    let keygen = install_ssh_keygen(&r);
    std::fs::create_dir_all(r.home.join(".ssh")).unwrap();
    std::fs::write(r.home.join(".ssh/id_test"), "not a real key\n").unwrap();
    sign_with(&r, "ssh", &keygen, Some("~/.ssh/id_test"));
    let start = r.git(&["rev-parse", "main"]);
    let (code, stdout, stderr) = batch_with_merges(&r, &["1-1-a"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let ours = teleos_commits(&r, &start);
    assert_eq!(ours.len(), 1, "the landing merge");
    let raw = r.git(&["cat-file", "-p", &ours[0]]);
    assert!(
        raw.contains("gpgsig -----BEGIN SSH SIGNATURE-----"),
        "{raw}"
    );
    let (args, _) = signed(&r)
        .into_iter()
        .find(|(_, input)| *input == payload(&r, &ours[0]))
        .expect("the signer saw the landing merge");
    let key = r.home.join(".ssh/id_test");
    let prefix = format!("-Y sign -n git -f {} ", key.display());
    assert!(args.starts_with(&prefix), "{args}");
}

#[test]
fn a_failing_signer_stops_the_landing_and_nothing_unsigned_lands() {
    let r = repo_with(&["1-1-a", "1-2-b"]);
    let gpg = install_gpg(&r);
    sign_with(&r, "openpgp", &gpg, None);
    std::fs::write(r.home.join("signer-fails"), "").unwrap();
    // The agents' own commits are not what this is about.
    std::fs::write(r.home.join("agent-no-sign"), "").unwrap();
    let (code, stdout, stderr) = batch_with_merges(&r, &["1-1-a", "1-2-b"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("cannot sign the commit (commit.gpgsign)"),
        "{stdout}"
    );
    assert!(stdout.contains("failed to sign"), "{stdout}");
    assert!(stdout.contains("No secret key"), "{stdout}");
    assert!(!stdout.contains("landed on"), "{stdout}");
    // Main holds the user's commit only; the work waits on refs.
    assert_eq!(
        r.git(&["log", "-1", "--format=%s", "main"]),
        "user: meanwhile"
    );
    assert!(stdout.contains("integration-"), "{stdout}");
    // Without user.signingkey the committer's identity names the key, as git does.
    let args = signed(&r).into_iter().next().expect("the signer ran").0;
    assert_eq!(
        args,
        "--status-fd=2 -bsau Test Committer <committer@example.com>"
    );
}

#[test]
fn x509_signs_through_gpgsm_with_the_same_arguments() {
    let r = repo_with(&["1-1-a"]);
    let gpgsm = install_gpg(&r);
    sign_with(&r, "x509", &gpgsm, Some("0xCAFE"));
    let start = r.git(&["rev-parse", "main"]);
    let (code, stdout, stderr) = batch_with_merges(&r, &["1-1-a"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let ours = teleos_commits(&r, &start);
    assert_eq!(ours.len(), 1, "the landing merge");
    assert!(r
        .git(&["cat-file", "-p", &ours[0]])
        .contains("gpgsig -----BEGIN"));
    let (args, _) = signed(&r)
        .into_iter()
        .find(|(_, input)| *input == payload(&r, &ours[0]))
        .expect("the signer saw the landing merge");
    assert_eq!(args, "--status-fd=2 -bsau 0xCAFE");
}
