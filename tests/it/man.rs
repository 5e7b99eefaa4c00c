//! The committed man page must match what the CLI definitions generate.

use std::path::Path;

#[test]
fn man_page_is_in_sync_with_the_cli() {
    let generated = git_teleos::cli::man::render();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/git-teleos.1");
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &generated).expect("write man page");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "man/git-teleos.1 is stale; regenerate it with: UPDATE_MAN=1 cargo test --test it man::"
    );
}

#[test]
fn man_page_documents_every_config_key_and_exit_code() {
    let page = String::from_utf8(git_teleos::cli::man::render()).unwrap();
    for (key, _) in git_teleos::settings::CONFIG_KEYS {
        assert!(page.contains(key), "{key} missing from the man page");
    }
    assert!(page.contains("EXIT STATUS"));
    assert!(page.contains("128+n"));
}

#[test]
fn readme_documents_every_config_key() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    for (key, _) in git_teleos::settings::CONFIG_KEYS {
        assert!(
            readme.contains(&format!("`{key}`")),
            "{key} missing from README.md"
        );
    }
}
