//! Attacks on the responder's own machine and state, against the real binaries: other local
//! users and web pages driving `bglass open`'s forwarder, a known proxy that stops showing
//! its checkpoint or restarts with a forked log, concurrent commands and damaged state
//! files, and listings that claim "nothing" when no proxy answered.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bglass_tests::attack::Impostor;
use bglass_tests::world::{PASSPHRASE, TEST_CATALOG, World, files_under};
use bglass_tests::{assert_no_panic, bin, first_line, loopback_port};

/// The test catalog plus `echo`: an HTTP upstream that answers every request with the
/// request head it received (what the forwarder and the proxy let through).
fn catalog_with_echo() -> String {
    format!(
        "{TEST_CATALOG}
[[service]]
name = \"echo\"
kind = \"http\"
description = \"Echoes the request head\"
upstream = \"127.0.0.1:{{redis}}\"
max_ttl = \"1h\"
default_ttl = \"30m\"
approvals = 0
health = {{ path = \"/health\", expect_status = 200 }}
"
    )
}

/// An HTTP server on loopback that answers each request with its head, and keeps the heads.
fn echo_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    tiny_server(None)
}

/// An HTTP server on loopback that answers each request with `page` (HTML), or with the
/// request head when there is no page; it keeps the request heads.
fn tiny_server(page: Option<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let keep = Arc::clone(&keep);
            let page = page.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65_536 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                keep.lock().unwrap().push(head.clone());
                let (kind, body) = match page {
                    Some(page) => ("text/html", page),
                    None => ("text/plain", head),
                };
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    (port, seen)
}

/// An answer from curl: status, response head(s), body.
#[derive(Debug)]
struct Curl {
    status: u16,
    head: String,
    body: String,
}

/// Runs curl (as `nobody` when `as_nobody`), one request, no redirects followed.
fn curl(as_nobody: bool, args: &[&str]) -> Curl {
    let mut cmd = if as_nobody {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "curl"]);
        c
    } else {
        Command::new("curl")
    };
    cmd.args(["-s", "-i", "--max-time", "20"]).args(args);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run curl (as nobody: {as_nobody}): {e}; runuser needs root")
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_else(|| {
            panic!(
                "curl {args:?} gave no HTTP answer: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Curl { status, head, body }
}

/// A child process killed when dropped (a failed assertion must not leave a forwarder
/// running until its grant ends).
struct Forwarder(Child);

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bglass open SERVICE` as `who`, on a loopback port the system chooses; returns the
/// process, the URL it printed and its port.
fn open(w: &World, who: &str, service: &str) -> (Forwarder, String, u16) {
    let mut child = Command::new(bin("bglass"))
        .env("BGLASS_PASSPHRASE", PASSPHRASE)
        .env("HOME", w.dir.path())
        .arg("--config")
        .arg(&w.responder(who).config)
        .args(["open", service, "--no-browser", "--local", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It listens before it prints its URL.
    let line = first_line(&mut child);
    let child = Forwarder(child);
    let url = line
        .split_whitespace()
        .find(|t| t.starts_with("http://"))
        .unwrap_or_else(|| panic!("open printed no URL: {line:?}"))
        .to_owned();
    let local = loopback_port(&url);
    (child, url, local)
}

/// Headless Chromium loads `url`, follows what the pages do for a few (virtual) seconds,
/// and returns the final page's DOM.
fn chromium(profile: &Path, url: &str) -> String {
    let out = bglass_tests::chromium::dump_dom(profile, url, &["--virtual-time-budget=10000"]);
    format!("{}\n--- chromium stderr:\n{}", out.stdout, out.stderr)
}

fn nginx_log(w: &World) -> String {
    std::fs::read_to_string(w.dir.path().join("nginx/access.log")).unwrap_or_default()
}

#[test]
fn open_forwarder_serves_only_the_responders_browser() {
    let mut w = World::new(&["proxy-a"], &[("carol", "responder")]);
    w.start_nginx();
    let (echo_port, echoed) = echo_server();
    w.set_tcp_port(echo_port);
    w.catalog(&catalog_with_echo());
    w.start_all();
    w.access("carol", "grafana");
    w.access("carol", "echo");
    let (forwarder, url, local) = open(&w, "carol", "grafana");
    // A page on another site (localhost is not 127.0.0.1 to a browser) that posts to the
    // forwarder as soon as it loads; the tool's home page links there after a moment (as
    // a responder following a link would).
    let (attacker_port, attacker_seen) = tiny_server(Some(format!(
        "<html><body>evil<form id=f method=POST action=\"http://127.0.0.1:{local}/api/health?attack=browser-form\"><input name=x value=1></form><script>fetch('http://127.0.0.1:{local}/api/health?attack=browser-fetch',{{method:'POST',mode:'no-cors',credentials:'include',body:'x'}});document.getElementById('f').submit()</script></body></html>"
    )));
    std::fs::write(
        w.dir.path().join("nginx/www/index.html"),
        format!("<html><body>grafana home page<script>location.href='http://localhost:{attacker_port}/'</script></body></html>\n"),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{local}");

    // 1. Another local user, without the session secret: refused, nothing reaches the tool.
    let stranger = curl(true, &[&format!("{base}/api/health?attack=nobody")]);
    assert_eq!(stranger.status, 403, "{stranger:?}");
    assert!(stranger.body.contains("bglass"), "{stranger:?}");
    let guessed = curl(
        true,
        &[&format!(
            "{base}/api/health?attack=guess&bglass-session=0123456789abcdef"
        )],
    );
    assert_eq!(guessed.status, 403, "{guessed:?}");

    // 2. The legitimate flow: the printed URL sets an HttpOnly, SameSite=Strict cookie and
    //    redirects to the clean URL; with the cookie the tool answers.
    assert!(url.starts_with(&format!("{base}/")), "{url}");
    assert!(url.contains("bglass-session="), "{url}");
    let first = curl(false, &[&url]);
    assert!(
        (300..400).contains(&first.status),
        "the printed URL does not redirect: {first:?}"
    );
    let location = first
        .head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location:")
                .map(|_| l[9..].trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no Location: {first:?}"));
    assert!(
        !location.contains("bglass-session"),
        "the redirect keeps the secret: {location}"
    );
    let set_cookie = first
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {first:?}"))
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie[11..]
        .trim()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let clean = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.clone()
    };
    let home = curl(false, &["-b", &cookie, &clean]);
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.body.contains("grafana home page"), "{home:?}");
    let page = curl(false, &["-b", &cookie, &format!("{base}/api/health")]);
    assert_eq!((page.status, page.body.as_str()), (200, "nginx says ok\n"));

    // The cookie alone, from another local user: still refused (nobody has no cookie jar
    // of the responder's, but even a stolen request without the right value fails).
    let wrong = curl(
        true,
        &[
            "-b",
            "bglass-wrong=1",
            &format!("{base}/api/health?attack=cookie"),
        ],
    );
    assert_eq!(wrong.status, 403, "{wrong:?}");

    // 3. DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host.
    //    Refused even with the cookie.
    for host in [
        format!("evil.example:{local}"),
        "evil.example".to_owned(),
        format!("127.0.0.1.nip.io:{local}"),
    ] {
        let rebound = curl(
            false,
            &[
                "-H",
                &format!("Host: {host}"),
                "-b",
                &cookie,
                &format!("{base}/api/health?attack=rebind"),
            ],
        );
        assert_eq!(rebound.status, 403, "Host {host}: {rebound:?}");
        assert!(rebound.body.contains("bglass"), "{rebound:?}");
    }
    // localhost:PORT is the forwarder's own name too.
    let by_name = curl(
        false,
        &[
            "-H",
            &format!("Host: localhost:{local}"),
            "-b",
            &cookie,
            &format!("{base}/api/health"),
        ],
    );
    assert_eq!(by_name.status, 200, "{by_name:?}");

    // 4. Cross-site writes: a form on evil.example posting to the forwarder (the browser
    //    would not send a SameSite=Strict cookie, but check the Origin anyway).
    for headers in [
        vec!["Origin: http://evil.example".to_owned()],
        vec!["Origin: http://127.0.0.1:1".to_owned()],
        vec!["Sec-Fetch-Site: cross-site".to_owned()],
        vec!["Origin: null".to_owned()],
    ] {
        let mut args = vec![
            "-X".to_owned(),
            "POST".to_owned(),
            "-d".to_owned(),
            "x=1".to_owned(),
        ];
        for h in &headers {
            args.extend(["-H".to_owned(), h.clone()]);
        }
        args.extend([
            "-b".to_owned(),
            cookie.clone(),
            format!("{base}/api/health?attack=csrf"),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let post = curl(false, &args);
        assert_eq!(post.status, 403, "{headers:?}: {post:?}");
        assert!(post.body.contains("bglass"), "{post:?}");
    }
    // The same POST from the forwarder's own origin is relayed (nginx refuses POST on a
    // static file with 405: it was reached).
    let same_origin = curl(
        false,
        &[
            "-X",
            "POST",
            "-d",
            "x=1",
            "-H",
            &format!("Origin: {base}"),
            "-H",
            "Sec-Fetch-Site: same-origin",
            "-b",
            &cookie,
            &format!("{base}/api/health?legit=post"),
        ],
    );
    assert_eq!(same_origin.status, 405, "{same_origin:?}");

    // 5. A real browser: the printed URL leads to the tool's page (cookie and redirect
    //    work); the page it then visits on another site posts to the forwarder, refused.
    let dom = chromium(&w.dir.path().join("chromium"), &url);
    assert!(
        attacker_seen
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.starts_with("GET / ")),
        "the browser never showed the tool's page (it links to the other site): {dom}"
    );
    assert!(
        dom.contains("bglass open: refused"),
        "the other site's form post was not refused: {dom}"
    );
    drop(forwarder);

    // None of the refused requests reached the tool (by its request line: the browser's
    // own later requests may name a refused page as their Referer).
    let log = nginx_log(&w);
    let requests: Vec<&str> = log.lines().filter_map(|l| l.split('"').nth(1)).collect();
    assert!(
        !requests.iter().any(|r| r.contains("attack=")),
        "a refused request reached nginx:\n{log}"
    );
    assert!(requests.iter().any(|r| r.contains("legit=post")), "{log}");

    // 6. The forwarder's cookie and secret (also in a Referer) never reach the tool.
    let (forwarder, url, local) = open(&w, "carol", "echo");
    let base = format!("http://127.0.0.1:{local}");
    let first = curl(false, &[&url]);
    let cookie = first
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(|l| l[11..].trim().split(';').next().unwrap().trim().to_owned())
        .unwrap_or_else(|| panic!("no cookie: {first:?}"));
    let secret = url.split("bglass-session=").nth(1).unwrap().to_owned();
    let echo = curl(
        false,
        &[
            "-b",
            &format!("tool_session=abc; {cookie}; theme=dark"),
            "-H",
            &format!("Referer: {url}"),
            &format!("{base}/page?q=1"),
        ],
    );
    drop(forwarder);
    assert_eq!(echo.status, 200, "{echo:?}");
    assert!(echo.body.starts_with("GET /page?q=1 "), "{}", echo.body);
    let heads = echoed.lock().unwrap().join("\n");
    assert!(
        !heads.contains(&secret) && !heads.contains("bglass-session"),
        "the session secret reached the tool:\n{heads}"
    );
    let cookie_name = cookie.split('=').next().unwrap();
    assert!(
        !heads.contains(&format!("{cookie_name}=")),
        "the forwarder's cookie reached the tool:\n{heads}"
    );
}

/// The stored record of `proxy_url` beside `config`, as JSON.
fn stored_record(config: &Path, port: u16) -> (PathBuf, serde_json::Value) {
    let dir = config.parent().unwrap().join("state/proxies");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(&format!("_{port}-"))
        })
        .unwrap_or_else(|| panic!("no record for port {port} in {}", dir.display()));
    let value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (path, value)
}

#[test]
fn known_proxy_without_a_checkpoint_or_with_a_forked_log_is_refused() {
    let mut w = World::new(&["proxy-a", "proxy-b"], &[("carol", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let carol = w.responder("carol").config.clone();
    let first = w.bglass(
        "carol",
        &["access", "grafana", "--reason", "r", "--incident", "INC-9"],
    );
    assert!(
        first.stdout.contains("by proxy-a"),
        "{}{}",
        first.stdout,
        first.stderr
    );
    let (_, known) = stored_record(&carol, w.proxies[0].port);
    let known_size = known["size"].as_u64().unwrap();
    assert!(known_size > 0, "{known}");
    let url_a = w.proxies[0].url();

    // proxy-a's host now serves, with proxy-a's own TLS key, a proxy that will not show its
    // checkpoint (what a rolled-back or re-initialised proxy does until it signs one). This
    // machine has seen proxy-a's log before, so that is a failure of proxy-a, not a first
    // contact.
    w.kill(0);
    let impostor = Impostor::start(&w.proxies[0]);
    let access = w.bglass(
        "carol",
        &[
            "access",
            "grafana",
            "--reason",
            "during the restart",
            "--incident",
            "INC-9",
        ],
    );
    impostor.stop();
    assert_no_panic(&access);
    assert_eq!(access.code, Some(0), "{}", access.stderr);
    assert!(
        access.stdout.contains("by proxy-b"),
        "proxy-a without a checkpoint was used:\nstdout: {}\nstderr: {}",
        access.stdout,
        access.stderr
    );
    assert!(
        access.stderr.contains(&url_a) && access.stderr.contains("checkpoint"),
        "no word on why proxy-a was skipped: {}",
        access.stderr
    );
    let (_, still) = stored_record(&carol, w.proxies[0].port);
    assert_eq!(still, known, "the stored checkpoint of proxy-a changed");

    // proxy-a re-initialised with the same keys and an empty data directory (a forked
    // log): once it has a checkpoint, it is reported as a split view.
    std::fs::rename(
        w.proxies[0].dir.join("data"),
        w.proxies[0].dir.join("data.old"),
    )
    .unwrap();
    w.start(0);
    let status = w.bglass("carol", &["status"]);
    assert_eq!(status.code, Some(0), "{}{}", status.stdout, status.stderr);
    assert!(
        status.stdout.contains(&format!("{url_a}: UNAVAILABLE")),
        "{}",
        status.stdout
    );
    assert!(
        status.stderr.contains("SPLIT VIEW") && status.stderr.contains(&url_a),
        "{}",
        status.stderr
    );

    // With no other proxy left: exit 4, the reason named.
    w.kill(1);
    let alone = w.bglass(
        "carol",
        &["access", "grafana", "--reason", "r", "--incident", "INC-9"],
    );
    assert_eq!(alone.code, Some(4), "{}{}", alone.stdout, alone.stderr);
    assert!(
        alone.stderr.contains("SPLIT VIEW") && alone.stderr.contains("split view"),
        "{}",
        alone.stderr
    );
    let (_, still) = stored_record(&carol, w.proxies[0].port);
    assert_eq!(still, known, "the stored checkpoint of proxy-a changed");
}

#[test]
fn concurrent_commands_of_one_responder_keep_its_state_whole() {
    let mut w = World::new(&["proxy-a", "proxy-b"], &[("carol", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let carol = w.responder("carol").config.clone();
    let state = carol.parent().unwrap().join("state");

    for round in 0..3 {
        let children: Vec<Child> = (0..8)
            .map(|i| {
                if i % 2 == 0 {
                    w.spawn_bglass(
                        "carol",
                        &["access", "grafana", "--reason", "r", "--incident", "INC-C"],
                    )
                } else {
                    w.spawn_bglass("carol", &["status"])
                }
            })
            .collect();
        for child in children {
            let out: bglass_tests::Run = child.wait_with_output().unwrap().into();
            assert_no_panic(&out);
            assert_eq!(
                out.code,
                Some(0),
                "round {round}: a concurrent command failed: {}{}",
                out.stdout,
                out.stderr
            );
        }
    }
    for (path, bytes) in files_under(&state) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "lock" {
            continue;
        }
        assert!(
            name.ends_with(".json"),
            "a stray file is left in the state: {}",
            path.display()
        );
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    }
}

#[test]
fn a_damaged_proxy_record_is_a_loud_error_never_a_first_contact() {
    let mut w = World::new(&["proxy-a", "proxy-b"], &[("carol", "responder")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    let carol = w.responder("carol").config.clone();
    w.access("carol", "grafana");

    // A damaged record of a known proxy: a loud error naming the file, never a re-pin.
    let (record, _) = stored_record(&carol, w.proxies[0].port);
    let garbage = b"\x00\xffnot json at all\x13";
    std::fs::write(&record, garbage).unwrap();
    for args in [
        vec!["status"],
        vec!["access", "grafana", "--reason", "r", "--incident", "INC-C"],
    ] {
        let out = w.bglass("carol", &args);
        assert_no_panic(&out);
        assert_ne!(out.code, Some(0), "{args:?} accepted a damaged record");
        assert!(
            out.stderr.contains(&record.display().to_string()),
            "{args:?}: the error does not name the file: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read(&record).unwrap(),
            garbage,
            "{args:?} overwrote the damaged record"
        );
    }
    // A missing record is a first contact: learned again.
    std::fs::remove_file(&record).unwrap();
    let out = w.bglass("carol", &["status"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    stored_record(&carol, w.proxies[0].port);
}

#[test]
fn listings_fail_when_no_proxy_answered() {
    let mut w = World::new(&["proxy-a", "proxy-b"], &[("carol", "responder,approver")]);
    w.start_nginx();
    w.catalog(TEST_CATALOG);
    w.start_all();
    w.access("carol", "grafana");

    // One proxy down: what the other gave, and a warning naming the missing one.
    w.kill(1);
    let url_b = w.proxies[1].url();
    for args in [vec!["grants"], vec!["requests"], vec!["grants", "--json"]] {
        let out = w.bglass("carol", &args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&url_b),
            "{args:?}: no warning about {url_b}: {}",
            out.stderr
        );
    }
    let grants = w.bglass("carol", &["grants"]);
    assert!(grants.stdout.contains("grafana"), "{}", grants.stdout);

    // Every proxy down: exit 4, each proxy named with its reason; never "No grants."
    w.kill(0);
    let url_a = w.proxies[0].url();
    for args in [
        vec!["grants"],
        vec!["requests"],
        vec!["grants", "--json"],
        vec!["requests", "--json"],
    ] {
        let out = w.bglass("carol", &args);
        assert_no_panic(&out);
        assert_eq!(out.code, Some(4), "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&url_a) && out.stderr.contains(&url_b),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stdout.contains("No grants") && !out.stdout.contains("No pending"),
            "{args:?}: {}",
            out.stdout
        );
        assert!(out.stdout.trim().is_empty(), "{args:?}: {}", out.stdout);
    }
}
