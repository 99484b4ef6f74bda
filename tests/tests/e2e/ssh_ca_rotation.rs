//! The SSH CA rotated with an overlap (`bglass-proxy ssh-ca begin|finish|retire`) against
//! a real OpenSSH sshd: `bglass ssh` works at every step for a host given the printed
//! lines, the proxy signs with the new CA only after `finish` (a host that trusts only the
//! old CA then refuses it, which is why hosts get both first), and steps out of order are
//! refused.

use std::time::Duration;

use bglass_tests::world::{SSH_CATALOG, World, current_user};
use bglass_tests::{Run, command, eventually, run};

fn ssh_ca(w: &World, step: &str) -> Run {
    run(command("bglass-proxy", w.dir.path())
        .args(["ssh-ca", step, "--config"])
        .arg(&w.proxies[0].config))
}

/// What the host trusts: its TrustedUserCAKeys file (sshd reads it at each login).
fn host_trusts(w: &World, lines: &[&str]) {
    std::fs::write(
        w.dir.path().join("sshd/ca.pub"),
        format!("{}\n", lines.join("\n")),
    )
    .unwrap();
}

fn ssh_ok(w: &World) -> Run {
    w.bglass(
        "alice",
        &[
            "ssh",
            "bastion",
            "--user",
            &current_user(),
            "--",
            "echo",
            "ok",
        ],
    )
}

fn lines(out: &Run) -> Vec<String> {
    out.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn the_ssh_ca_rotates_with_an_overlap_and_ssh_works_at_every_step() {
    let mut w = World::new(&["proxy-a"], &[("alice", "responder")]);
    w.start_sshd(&[]);
    w.start_redis();
    w.catalog(SSH_CATALOG);
    w.start_all();
    w.access("alice", "bastion");
    assert_eq!(ssh_ok(&w).stdout, "ok\n");

    let early = ssh_ca(&w, "finish");
    assert_ne!(early.code, Some(0));
    assert!(
        early.stderr.contains("no rotation is begun"),
        "{}",
        early.stderr
    );
    let keys = ssh_ca(&w, "keys");
    assert_eq!(keys.code, Some(0), "{}", keys.stderr);
    let old = lines(&keys);
    assert_eq!(old.len(), 1, "{}", keys.stdout);

    // 1. Begun: two lines; the proxy still signs with the old CA (the host, not yet
    // updated, lets alice in), and hosts are given both.
    let begun = ssh_ca(&w, "begin");
    assert_eq!(begun.code, Some(0), "{}", begun.stderr);
    let both = lines(&begun);
    assert_eq!(both.len(), 2, "{}", begun.stdout);
    assert_eq!(both[0], old[0]);
    assert!(
        both[1].ends_with("bglass-ssh-ca-proxy-a-next"),
        "{}",
        both[1]
    );
    let again = ssh_ca(&w, "begin");
    assert_ne!(again.code, Some(0));
    assert!(again.stderr.contains("already begun"), "{}", again.stderr);
    assert_eq!(ssh_ok(&w).stdout, "ok\n");
    host_trusts(&w, &[&both[0], &both[1]]);
    assert_eq!(ssh_ok(&w).stdout, "ok\n");

    // 2. Finished, and the proxy told (SIGHUP): it signs with the new CA. A host left
    // trusting only the old CA refuses alice; one with both lets her in.
    let finished = ssh_ca(&w, "finish");
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let after = lines(&finished);
    let new_line = both[1].replace("-next", "");
    assert_eq!(after[0], new_line);
    assert!(
        after[1].ends_with("bglass-ssh-ca-proxy-a-previous"),
        "{}",
        after[1]
    );
    w.hup(0);
    host_trusts(&w, &[&old[0]]);
    eventually(
        Duration::from_secs(10),
        "certificates from the new CA",
        || (ssh_ok(&w).code != Some(0)).then_some(()),
    );
    host_trusts(&w, &[&after[0], &after[1]]);
    assert_eq!(ssh_ok(&w).stdout, "ok\n");

    // 3. Retired: the new CA alone.
    let retired = ssh_ca(&w, "retire");
    assert_eq!(retired.code, Some(0), "{}", retired.stderr);
    assert_eq!(lines(&retired), std::slice::from_ref(&new_line));
    host_trusts(&w, &[&new_line]);
    let out = ssh_ok(&w);
    assert_eq!(out.stdout, "ok\n", "{}", out.stderr);
    let cell_pub = std::fs::read_to_string(w.proxies[0].dir.join("ssh_ca.pub")).unwrap();
    assert_eq!(cell_pub, format!("{new_line}\n"));
}
