//! What the responder reads around the commands: completion scripts that survive a closed
//! pipe (`bglass completions bash | head`), dynamic completion of service names and grant
//! and request ids, manual pages that `man` renders, and colour only where asked for
//! (`--color`, `NO_COLOR`).

use std::process::{Command, Stdio};

use bglass_tests::world::{TEST_CATALOG, World};
use bglass_tests::{Run, assert_no_panic, bin, command, run};

/// `bglass ARGS` with its standard output a pipe whose reader is already closed: the
/// first write fails with EPIPE, every time.
fn into_closed_pipe(home: &std::path::Path, args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = command("bglass", home)
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    out.into()
}

#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = into_closed_pipe(home.path(), &["completions", shell]);
        assert_no_panic(&out);
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        assert!(out.stderr.is_empty(), "{shell}: {}", out.stderr);
    }
    // And as a person types it.
    let out = run(Command::new("bash").arg("-c").arg(format!(
        "set -o pipefail; {} completions bash | head -n 3",
        bin("bglass").display()
    )));
    assert_no_panic(&out);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 3);
}

#[test]
fn manual_pages_render_for_every_visible_command() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("man1");
    let out = run(command("bglass", home.path()).args(["man"]).arg(&dir));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for page in [
        "bglass.1",
        "bglass-access.1",
        "bglass-unlock.1",
        "bglass-audit-verify.1",
    ] {
        assert!(dir.join(page).exists(), "{page} missing: {}", out.stdout);
    }
    assert!(
        !dir.join("bglass-agent-daemon.1").exists(),
        "a hidden command got a page"
    );
    let roff = std::fs::read_to_string(dir.join("bglass-access.1")).unwrap();
    assert!(roff.contains(".TH") && roff.contains("incident"), "{roff}");
    // `man` itself renders it (man-db, installed by scripts/test).
    let shown = run(Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.join("bglass-access.1"))
        .env("MANWIDTH", "80"));
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    assert!(shown.stdout.contains("--reason"), "{}", shown.stdout);
    // Into a closed pipe, too.
    let closed = into_closed_pipe(home.path(), &["man", &dir.display().to_string()]);
    assert_no_panic(&closed);
}

/// The candidates clap_complete offers for the word at `index` of `words` (bash protocol).
fn candidates(w: &World, who: &str, runtime: &std::path::Path, words: &[&str]) -> Vec<String> {
    let r = w.responder(who);
    let mut cmd = command("bglass", w.dir.path());
    cmd.env("COMPLETE", "bash")
        .env("BGLASS_CONFIG", &r.config)
        .env("XDG_RUNTIME_DIR", runtime)
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .env("_CLAP_IFS", "\n")
        .arg("--")
        .args(words)
        .stdin(Stdio::null());
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "complete {words:?}: {}", out.stderr);
    assert!(
        !out.stderr.contains("assphrase"),
        "completion asked for a passphrase: {}",
        out.stderr
    );
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn services_and_ids_complete_without_a_prompt() {
    let w = World::alice_and_carol();
    let runtime = tempfile::tempdir().unwrap();
    // Without an agent: the grants carol holds here, nothing asked of anyone.
    let granted = w.access("carol", "grafana");
    let grant = granted["grant"]["id"].as_str().unwrap().to_owned();
    let words = candidates(&w, "carol", runtime.path(), &["bglass", "revoke", ""]);
    assert!(words.contains(&grant), "{words:?}");
    let words = candidates(&w, "carol", runtime.path(), &["bglass", "curl", "gr"]);
    assert_eq!(words, ["grafana"], "{words:?}");
    // With the agent: the catalog and the pending requests, from the proxy.
    let pending = w.spawn_bglass(
        "carol",
        &[
            "access",
            "argocd",
            "--reason",
            "r",
            "--incident",
            "INC-C",
            "--wait",
            "30s",
            "--json",
        ],
    );
    let unlock = run(command("bglass", w.dir.path())
        .env("BGLASS_PASSPHRASE", bglass_tests::world::PASSPHRASE)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .arg("--config")
        .arg(&w.responder("alice").config)
        .args(["unlock", "--for", "5m"]));
    assert_eq!(unlock.code, Some(0), "{}", unlock.stderr);
    let _agent = bglass_tests::EndAgent(bglass_tests::agent_pid(&unlock.stdout));
    let words = candidates(&w, "alice", runtime.path(), &["bglass", "access", ""]);
    for service in ["argocd", "down", "grafana", "prom"] {
        assert!(words.contains(&service.to_owned()), "{words:?}");
    }
    bglass_tests::eventually(
        std::time::Duration::from_secs(10),
        "the request is listed",
        || {
            candidates(&w, "alice", runtime.path(), &["bglass", "approve", "r-"])
                .iter()
                .any(|r| r.starts_with("r-"))
        },
    );
    let lock = run(command("bglass", w.dir.path())
        .env("XDG_RUNTIME_DIR", runtime.path())
        .arg("--config")
        .arg(&w.responder("alice").config)
        .arg("lock"));
    assert_eq!(lock.code, Some(0), "{}", lock.stderr);
    let mut pending = pending;
    let _ = pending.kill();
    let _ = pending.wait();
}

#[test]
fn colour_only_where_asked_for() {
    let w = {
        let mut w = World::new(&["proxy-a"], &[("carol", "responder")]);
        w.start_nginx();
        w.catalog(TEST_CATALOG);
        w.start_all();
        w
    };
    w.access("carol", "grafana");
    // Into a pipe (auto): no escape codes.
    let plain = w.bglass("carol", &["grants"]);
    assert_eq!(plain.code, Some(0), "{}", plain.stderr);
    assert!(!plain.stdout.contains('\x1b'), "{:?}", plain.stdout);
    // Forced on.
    let always = w.bglass("carol", &["--color", "always", "grants"]);
    assert!(
        always.stdout.contains("\x1b[32mactive\x1b[0m"),
        "{:?}",
        always.stdout
    );
    // NO_COLOR yields to an explicit --color always, but turns auto off.
    let r = w.responder("carol");
    let no_color = run(command("bglass", w.dir.path())
        .env("BGLASS_PASSPHRASE", bglass_tests::world::PASSPHRASE)
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(&r.config)
        .args(["--color", "auto", "grants"]));
    assert!(!no_color.stdout.contains('\x1b'), "{:?}", no_color.stdout);
    let never = w.bglass("carol", &["--color", "never", "status"]);
    assert!(!never.stdout.contains('\x1b'), "{:?}", never.stdout);
    // auto on a terminal (util-linux `script` gives it a pseudo-terminal): coloured,
    // unless NO_COLOR says otherwise.
    let on_tty = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec"])
            .arg(format!(
                "{} --config {} grants",
                bin("bglass").display(),
                r.config.display()
            ))
            .arg("/dev/null")
            .env("BGLASS_PASSPHRASE", bglass_tests::world::PASSPHRASE)
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        run(&mut cmd)
    };
    let tty = on_tty(None);
    assert_eq!(tty.code, Some(0), "{}{}", tty.stdout, tty.stderr);
    assert!(tty.stdout.contains("\x1b[32mactive"), "{:?}", tty.stdout);
    let tty = on_tty(Some("1"));
    assert!(
        tty.stdout.contains("active") && !tty.stdout.contains('\x1b'),
        "{:?}",
        tty.stdout
    );
    let bad = w.bglass("carol", &["--color", "sometimes", "grants"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
}
