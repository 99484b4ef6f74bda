//! `bglass enroll` and `whoami`: the key file, the config, and the printed roster entry.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bglass_core::roster::{Role, Roster};
use bglass_tests::{assert_no_panic, command, run};

const PASS: &str = "correct horse battery";

fn pin() -> String {
    format!("sha256:{}", "3f".repeat(32))
}

/// `enroll --id alice` for one loopback proxy.
fn enroll_args() -> Vec<String> {
    [
        "enroll",
        "--id",
        "alice",
        "--proxy",
        "https://127.0.0.1:8443",
        "--pin",
    ]
    .into_iter()
    .map(String::from)
    .chain([pin()])
    .collect()
}

fn enroll(home: &Path, extra: &[&str]) -> bglass_tests::Run {
    run(command("bglass", home)
        .env("BGLASS_PASSPHRASE", PASS)
        .args(enroll_args())
        .args(["--kdf-work-factor", "12"])
        .args(extra))
}

#[test]
fn enroll_writes_a_private_encrypted_key_a_config_and_a_roster_entry() {
    let home = tempfile::tempdir().unwrap();
    let out = enroll(
        home.path(),
        &["--name", "Alice Example", "--roles", "responder,approver"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // The XDG default under $HOME, since no --config was given.
    let dir = home.path().join(".config/bglass");
    let key = dir.join("identity.age");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let sealed = std::fs::read_to_string(&key).unwrap();
    assert!(sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(
        !sealed.contains("alice"),
        "the key file reveals nothing in clear"
    );
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("url = \"https://127.0.0.1:8443\""));
    assert!(config.contains(&pin()));

    // The printed entry parses with the roster parser.
    let roster =
        Roster::from_bytes(Path::new("entry.toml"), out.stdout.clone().into_bytes()).unwrap();
    let alice = &roster.responders()[0];
    assert_eq!(alice.id.as_str(), "alice");
    assert_eq!(alice.name, "Alice Example");
    assert_eq!(alice.roles, vec![Role::Responder, Role::Approver]);

    // whoami unlocks the key and shows the same public key.
    let who = run(command("bglass", home.path())
        .env("BGLASS_PASSPHRASE", PASS)
        .arg("whoami"));
    assert_eq!(who.code, Some(0), "{}", who.stderr);
    assert!(
        who.stdout.contains(&alice.key.to_string()),
        "{}",
        who.stdout
    );
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(enroll(home.path(), &[]).code, Some(0));
    let out = run(command("bglass", home.path())
        .env("BGLASS_PASSPHRASE", "not the passphrase")
        .arg("whoami"));
    assert_no_panic(&out);
    assert_eq!(out.code, Some(1));
    let key = home.path().join(".config/bglass/identity.age");
    assert_eq!(
        out.stderr.lines().next().unwrap(),
        format!("error: wrong passphrase for key file {}", key.display())
    );
    assert!(out.stderr.contains("hint:"));
}

#[test]
fn enroll_never_overwrites_a_key() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(enroll(home.path(), &[]).code, Some(0));
    let key = home.path().join(".config/bglass/identity.age");
    let before = std::fs::read(&key).unwrap();
    let again = enroll(home.path(), &[]);
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn bad_enroll_input_is_refused_before_anything_is_written() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("c/config.toml");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--proxy".into(),
                "https://proxy.example:8443".into(),
                "--pin".into(),
                pin(),
            ],
            "needs DNS",
        ),
        (
            vec![
                "--proxy".into(),
                "http://127.0.0.1:8443".into(),
                "--pin".into(),
                pin(),
            ],
            "must start with https://",
        ),
        (
            vec![
                "--proxy".into(),
                "https://127.0.0.1:8443".into(),
                "--pin".into(),
                "sha256:abc".into(),
            ],
            "pin must be",
        ),
        (
            vec![
                "--proxy".into(),
                "https://127.0.0.1:8443".into(),
                "--proxy".into(),
                "https://127.0.0.2:8443".into(),
                "--pin".into(),
                pin(),
            ],
            "give one pin per proxy",
        ),
    ];
    for (args, expected) in cases {
        let out = run(command("bglass", home.path())
            .env("BGLASS_PASSPHRASE", PASS)
            .arg("--config")
            .arg(&config)
            .args(["enroll", "--id", "alice"])
            .args(&args));
        assert_no_panic(&out);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        assert!(
            !config.parent().unwrap().exists(),
            "nothing written for {args:?}"
        );
    }

    let weak = run(command("bglass", home.path())
        .env("BGLASS_PASSPHRASE", "short")
        .arg("--config")
        .arg(&config)
        .args(enroll_args()));
    assert_eq!(weak.code, Some(1));
    assert!(
        weak.stderr.contains("passphrase is too short"),
        "{}",
        weak.stderr
    );
    assert!(!config.exists());
}

#[test]
fn config_is_found_via_flag_then_env_then_xdg() {
    let home = tempfile::tempdir().unwrap();
    let explicit = home.path().join("explicit/config.toml");
    let out = run(command("bglass", home.path())
        .env("BGLASS_PASSPHRASE", PASS)
        .env("BGLASS_CONFIG", &explicit)
        .args(enroll_args())
        .args(["--kdf-work-factor", "12"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(explicit.exists());
    assert!(home.path().join("explicit/identity.age").exists());

    let xdg = home.path().join("xdg");
    let who = run(command("bglass", home.path())
        .env("BGLASS_PASSPHRASE", PASS)
        .env("XDG_CONFIG_HOME", &xdg)
        .arg("whoami"));
    assert_eq!(who.code, Some(1));
    assert!(
        who.stderr
            .contains(&xdg.join("bglass/config.toml").display().to_string()),
        "{}",
        who.stderr
    );
    assert!(
        who.stderr.contains("run `bglass enroll` first"),
        "{}",
        who.stderr
    );
}

#[test]
fn enroll_says_where_the_roster_entry_went_when_stdout_is_redirected() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("alice-entry.toml");
    let out = run(command("bglass", home.path())
        .env("BGLASS_PASSPHRASE", PASS)
        .args(enroll_args())
        .args(["--kdf-work-factor", "12"])
        .stdout(std::fs::File::create(&file).unwrap()));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let entry = std::fs::read_to_string(&file).unwrap();
    assert!(entry.contains("[[responder]]"), "{entry}");
    assert!(
        out.stderr.contains(&format!(
            "Send the [[responder]] entry written to {} (standard output)",
            file.canonicalize().unwrap().display()
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("entry above"), "{}", out.stderr);
    // Into a pipe: it says so rather than "above".
    let piped = enroll(tempfile::tempdir().unwrap().path(), &[]);
    assert_eq!(piped.code, Some(0), "{}", piped.stderr);
    assert!(
        piped.stderr.contains("written to standard output (pipe:"),
        "{}",
        piped.stderr
    );
}
