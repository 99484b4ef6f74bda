//! Waiting for an approval as a responder does it during an outage: the wait rides out a
//! proxy killed and restarted under it and reattaches to the same request, and asking again
//! resumes the pending request (or reuses the live grant) instead of piling up duplicates
//! in front of the approvers. Against the real binaries.

use std::io::Read;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bglass_tests::world::World;
use bglass_tests::{Run, eventually};
use serde_json::Value;

fn world() -> World {
    World::alice_and_carol()
}

/// What a running command wrote to a pipe so far (read on a thread), and whether the pipe
/// is closed.
type Collected = Arc<Mutex<(String, bool)>>;

fn collect(mut pipe: impl Read + Send + 'static) -> Collected {
    let text: Collected = Arc::new(Mutex::new((String::new(), false)));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .0
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        sink.lock().unwrap().1 = true;
    });
    text
}

fn text(c: &Collected) -> String {
    c.lock().unwrap().0.clone()
}

/// The pending requests approver `who` sees (`None` while the proxy does not answer).
fn pending(w: &World, who: &str) -> Option<Vec<Value>> {
    let out = w.bglass(who, &["requests", "--json"]);
    if out.code != Some(0) {
        return None;
    }
    let list: Vec<Value> = serde_json::from_str(&out.stdout).ok()?;
    Some(list.into_iter().map(|e| e["request"].clone()).collect())
}

/// Carol's pending requests for argocd, as alice (an approver) sees them.
fn carols(w: &World) -> Option<Vec<String>> {
    Some(
        pending(w, "alice")?
            .into_iter()
            .filter(|r| r["responder"] == "carol" && r["service"] == "argocd")
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect(),
    )
}

fn ask(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "access",
        "argocd",
        "--reason",
        "deploy rollback",
        "--incident",
        "INC-13",
    ];
    args.extend_from_slice(extra);
    args
}

/// Waits for `child` and returns what it wrote.
fn finish(mut child: Child, stdout: &Collected, stderr: &Collected) -> Run {
    let status = eventually(Duration::from_secs(60), "bglass access to end", || {
        child.try_wait().unwrap()
    });
    eventually(Duration::from_secs(10), "the pipes to close", || {
        stdout.lock().unwrap().1 && stderr.lock().unwrap().1
    });
    Run {
        code: status.code(),
        stdout: text(stdout),
        stderr: text(stderr),
    }
}

#[test]
fn a_wait_rides_out_a_proxy_restart_and_reattaches_to_the_same_request() {
    let mut w = world();
    let mut child = w.spawn_bglass("carol", &ask(&["--wait", "90s", "--json"]));
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let request = eventually(Duration::from_secs(30), "carol's request", || {
        carols(&w)
            .filter(|ids| ids.len() == 1)
            .map(|ids| ids[0].clone())
    });

    // The proxy dies under the wait, and stays down for about three seconds.
    w.kill(0);
    let down = Instant::now();
    eventually(
        Duration::from_secs(30),
        "carol to say the proxy is unreachable",
        || {
            let said = text(&stderr);
            said.contains("is unreachable") && said.contains(&request)
        },
    );
    eventually(Duration::from_secs(10), "three seconds of outage", || {
        down.elapsed() >= Duration::from_secs(3)
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "bglass access gave up during a 3 s outage: {}",
        text(&stderr)
    );
    w.start(0);

    // The request survived in the log; the wait reattaches to it, and approvers see it
    // once.
    eventually(Duration::from_secs(30), "carol to reattach", || {
        text(&stderr).contains("answers again")
    });
    assert_eq!(carols(&w).unwrap(), vec![request.clone()]);
    let approved = w.bglass("alice", &["approve", &request]);
    assert_eq!(approved.code, Some(0), "{}", approved.stderr);

    let out = finish(child, &stdout, &stderr);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stderr, w.logs());
    let view: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(view["id"], request.as_str());
    assert_eq!(view["status"], "granted");
    assert!(view["grant"]["token"].is_string());
    assert!(
        !out.stderr.contains("trying the next proxy"),
        "{}",
        out.stderr
    );
}

#[test]
fn asking_again_resumes_the_pending_request_and_reuses_the_live_grant_unless_new() {
    let w = world();
    // A request nobody approved in time: still pending on the proxy.
    let first = w.bglass("carol", &ask(&["--wait", "1s"]));
    assert_eq!(first.code, Some(3), "{}", first.stderr);
    let ids = carols(&w).unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let request = ids[0].clone();

    // Asking again (as a retrying responder does) waits on that request: no duplicate.
    for _ in 0..3 {
        let again = w.bglass("carol", &ask(&["--wait", "1s"]));
        assert_eq!(again.code, Some(3), "{}", again.stderr);
        assert!(
            again
                .stderr
                .contains(&format!("{request} is your pending request")),
            "{}",
            again.stderr
        );
    }
    assert_eq!(carols(&w).unwrap(), vec![request.clone()]);

    // Resumed once more, and approved while it waits: the grant of the first request.
    let mut child = w.spawn_bglass("carol", &ask(&["--wait", "60s", "--json"]));
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    eventually(Duration::from_secs(30), "carol to wait again", || {
        text(&stderr).contains(&format!("{request} is your pending request"))
    });
    let approved = w.bglass("alice", &["approve", &request]);
    assert_eq!(approved.code, Some(0), "{}", approved.stderr);
    let out = finish(child, &stdout, &stderr);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let view: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(view["id"], request.as_str());
    let grant = view["grant"]["id"].as_str().unwrap().to_owned();

    // With the grant live, asking again says so and reuses it: no new request.
    let reused = w.bglass("carol", &ask(&[]));
    assert_eq!(reused.code, Some(0), "{}", reused.stderr);
    assert!(
        reused.stdout.contains(&format!("You already hold {grant}"))
            && reused.stdout.contains("--new"),
        "{}",
        reused.stdout
    );
    assert_eq!(carols(&w).unwrap(), Vec::<String>::new());
    let requests = bglass_tests::attack::events(&w, 0)
        .into_iter()
        .filter(|e| e["event"]["event"].get("request").is_some())
        .count();
    assert_eq!(requests, 1, "one request in the log");

    // --new asks anew.
    let new = w.bglass("carol", &ask(&["--new", "--wait", "1s"]));
    assert_eq!(new.code, Some(3), "{}", new.stderr);
    let ids = carols(&w).unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], request);
}

#[test]
fn on_a_terminal_the_wait_counts_in_place_and_rings_the_bell_on_the_answer() {
    let w = world();
    let quote = |p: &std::path::Path| format!("'{}'", p.display());
    // `script` gives bglass a pseudo-terminal as its stderr.
    let line = format!(
        "{} --config {} access argocd --reason 'deploy rollback' --incident INC-13 --wait 60s",
        quote(&bglass_tests::bin("bglass")),
        quote(&w.responder("carol").config)
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qfec", &line, "/dev/null"])
        .env("BGLASS_PASSPHRASE", bglass_tests::world::PASSPHRASE)
        .env("HOME", w.dir.path())
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut running = script.spawn().unwrap();
    let stdout = collect(running.stdout.take().unwrap());
    let stderr = collect(running.stderr.take().unwrap());
    // The status line is redrawn in place with the elapsed time.
    eventually(Duration::from_secs(30), "the clock to tick", || {
        let screen = text(&stdout);
        screen.contains("\r\x1b[Kwaiting for approval of r-") && screen.contains("[00:02]")
    });
    let request = eventually(Duration::from_secs(30), "carol's request", || {
        carols(&w)
            .filter(|ids| ids.len() == 1)
            .map(|ids| ids[0].clone())
    });
    let approved = w.bglass("alice", &["approve", &request]);
    assert_eq!(approved.code, Some(0), "{}", approved.stderr);
    let out = finish(running, &stdout, &stderr);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    // The answer rings the bell once, then the grant is shown.
    assert_eq!(out.stdout.matches('\x07').count(), 1, "{:?}", out.stdout);
    let bell = out.stdout.find('\x07').unwrap();
    assert!(
        out.stdout[bell..].contains("Granted argocd"),
        "{:?}",
        out.stdout
    );
}
