//! The responder binary itself: static, starts, answers --version and completions.

use bglass_tests::{bin, command, run};

#[test]
fn bglass_is_statically_linked() {
    let out = run(std::process::Command::new("file").arg(bin("bglass")));
    assert_eq!(
        out.code,
        Some(0),
        "the `file` tool is needed: {}",
        out.stderr
    );
    assert!(
        out.stdout.contains("statically linked") || out.stdout.contains("static-pie linked"),
        "{}",
        out.stdout
    );
}

#[test]
fn version_and_completions() {
    let home = tempfile::tempdir().unwrap();
    let v = run(command("bglass", home.path()).arg("--version"));
    assert_eq!(v.code, Some(0));
    assert_eq!(
        v.stdout.trim(),
        format!("bglass {}", env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish"] {
        let c = run(command("bglass", home.path()).args(["completions", shell]));
        assert_eq!(c.code, Some(0), "{shell}: {}", c.stderr);
        assert!(
            c.stdout.contains("enroll"),
            "{shell} completions name the commands"
        );
    }
    let bad = run(command("bglass", home.path()).args(["completions", "cmd.exe"]));
    assert_eq!(bad.code, Some(2));
}
