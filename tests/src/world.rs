//! A small world on loopback for end-to-end tests: proxies made by the real
//! `bglass-proxy init` and run as processes, responders enrolled by the real `bglass enroll`,
//! and the real upstreams of `upstreams.rs`.
//!
//! Ports: a proxy starts the first time on port 0 and prints the addresses it bound; the
//! world reads them, writes them into the proxy's `proxy.toml` (it restarts on the address
//! its clients know) and into every responder's `config.toml`. Until then, and while a proxy
//! is stopped, a [`PortHold`] keeps its port: connections are refused, as to a proxy that is
//! down, and no other test is handed the port.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::catalogs::{RECORDED_CATALOG, SSH_CATALOG, TEST_CATALOG};
use crate::ports::PortHold;
use crate::wait::eventually;
use crate::{Run, bin, command, run};

/// The passphrase of every test responder.
pub const PASSPHRASE: &str = "correct horse battery";
/// The upstream user nginx accepts.
pub const UPSTREAM_USER: &str = "grafana-sa";
/// The upstream password nginx accepts (must never reach a responder).
pub const UPSTREAM_PASSWORD: &str = "upstream-s3cret-7f1c";

/// How long a proxy may take to start listening, or to sign its first checkpoint.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The Basic credential nginx accepts, as injected.
pub fn upstream_credential() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}"))
}

/// One proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Its id.
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its proxy.toml.
    pub config: PathBuf,
    /// TLS port (held, and refusing connections, until the proxy first starts).
    pub port: u16,
    /// Metrics port (likewise).
    pub metrics_port: u16,
    /// The CA pin.
    pub pin: String,
    /// The signing key.
    pub key: String,
    child: Option<Child>,
    /// Whether proxy.toml names the ports yet (after the first start).
    bound: bool,
    /// The ports' holds while the proxy does not listen on them.
    holds: Vec<PortHold>,
}

impl Proxy {
    /// The proxy URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    /// Its audit log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("data/log")
    }
    /// Its stderr.
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.join("proxy.stderr")
    }

    /// The tree size of the latest checkpoint in its log directory (0 when there is none).
    fn checkpoint_size(&self) -> u64 {
        std::fs::read(
            self.log_dir()
                .join(bglass_core::audit::storage::CHECKPOINT_FILE),
        )
        .ok()
        .and_then(|note| bglass_core::audit::checkpoint::peek(&note))
        .map_or(0, |(_, size, _)| size)
    }

    /// Holds its ports while it does not listen.
    fn hold_ports(&mut self) {
        self.holds = vec![
            PortHold::again(self.port),
            PortHold::again(self.metrics_port),
        ];
    }
}

/// One responder.
#[derive(Debug)]
pub struct Responder {
    /// Id.
    pub id: String,
    /// Config file.
    pub config: PathBuf,
    /// Roster entry printed by enroll.
    pub entry: String,
}

/// The world.
#[derive(Debug)]
pub struct World {
    /// Everything lives under here.
    pub dir: tempfile::TempDir,
    /// Proxies.
    pub proxies: Vec<Proxy>,
    /// Responders.
    pub responders: Vec<Responder>,
    /// nginx's port (0 when not started).
    pub nginx_port: u16,
    pub(crate) nginx: Option<Child>,
    /// A port nothing listens on (for a "down" upstream), held for the world's life.
    pub dead_port: u16,
    _dead: PortHold,
    /// sshd's port and host public key, once started.
    pub sshd: Option<(u16, String)>,
    /// The recorded services' sshd (trusting the session CA), once started.
    pub recorded_sshd: Option<(u16, String)>,
    /// Redis's port, once started.
    pub redis_port: u16,
    pub(crate) others: Vec<Child>,
}

/// The address after `prefix` in a line of `text` ("…listening on 127.0.0.1:PORT (…").
fn announced(text: &str, prefix: &str) -> Option<u16> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(prefix)?;
        let addr = rest.split_whitespace().next()?;
        addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
    })
}

impl World {
    /// The common world: one proxy (`proxy-a`) with nginx and the test catalog, started;
    /// alice responds and approves, carol responds.
    pub fn alice_and_carol() -> Self {
        let mut w = Self::new(
            &["proxy-a"],
            &[("alice", "responder,approver"), ("carol", "responder")],
        );
        w.start_nginx();
        w.catalog(TEST_CATALOG);
        w.start_all();
        w
    }

    /// Proxies named `proxies`, responders `(id, roles)` enrolled with all proxies in order.
    pub fn new(proxies: &[&str], responders: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dead = PortHold::new();
        let mut world = World {
            proxies: Vec::new(),
            responders: Vec::new(),
            nginx_port: 0,
            nginx: None,
            dead_port: dead.port(),
            _dead: dead,
            sshd: None,
            recorded_sshd: None,
            redis_port: 0,
            others: Vec::new(),
            dir,
        };
        for id in proxies {
            let pdir = world.dir.path().join(id);
            // Port 0: the proxy's first start picks its ports (its certificate names the IP).
            let out = run(command("bglass-proxy", world.dir.path())
                .args(["init", "--dir"])
                .arg(&pdir)
                .args([
                    "--id",
                    id,
                    "--listen",
                    "127.0.0.1:0",
                    "--metrics",
                    "127.0.0.1:0",
                ]));
            assert_eq!(out.code, Some(0), "init {id}: {}", out.stderr);
            let field = |name: &str| {
                out.stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_else(|| panic!("init printed no {name}: {}", out.stdout))
            };
            let holds = vec![PortHold::new(), PortHold::new()];
            world.proxies.push(Proxy {
                id: (*id).to_owned(),
                config: pdir.join("proxy.toml"),
                dir: pdir,
                port: holds[0].port(),
                metrics_port: holds[1].port(),
                pin: field("pin"),
                key: field("signing key"),
                child: None,
                bound: false,
                holds,
            });
        }
        for (id, roles) in responders {
            let config = world.dir.path().join("home").join(id).join("config.toml");
            let mut cmd = command("bglass", world.dir.path());
            cmd.env("BGLASS_PASSPHRASE", PASSPHRASE)
                .arg("--config")
                .arg(&config)
                .args([
                    "enroll",
                    "--id",
                    id,
                    "--roles",
                    roles,
                    "--kdf-work-factor",
                    "10",
                ]);
            for p in &world.proxies {
                cmd.args(["--proxy", &p.url(), "--pin", &p.pin]);
            }
            let out = run(&mut cmd);
            assert_eq!(out.code, Some(0), "enroll {id}: {}", out.stderr);
            world.responders.push(Responder {
                id: (*id).to_owned(),
                config,
                entry: out.stdout,
            });
        }
        let roster: String = world
            .responders
            .iter()
            .map(|r| format!("{}\n", r.entry))
            .collect();
        for p in &world.proxies {
            std::fs::write(p.dir.join("responders.toml"), &roster).unwrap();
        }
        world
    }

    /// Writes `catalog` (with `{nginx}` and `{dead}` replaced by ports) as every proxy's
    /// services.toml, and stores the upstream credential in every vault.
    pub fn catalog(&self, catalog: &str) {
        let (ssh_port, host_key) = self.sshd.clone().unwrap_or((self.dead_port, String::new()));
        let (rssh_port, rhost_key) = self
            .recorded_sshd
            .clone()
            .unwrap_or((self.dead_port, String::new()));
        // Placeholders in a template, filled in before it is TOML.
        let text = catalog
            .replace("{nginx}", &self.nginx_port.to_string())
            .replace("{dead}", &self.dead_port.to_string())
            .replace("{ssh}", &ssh_port.to_string())
            .replace("{hostkey}", &host_key)
            .replace("{rssh}", &rssh_port.to_string())
            .replace("{rhostkey}", &rhost_key)
            .replace("{redis}", &self.redis_port.to_string());
        for p in &self.proxies {
            std::fs::write(p.dir.join("services.toml"), &text).unwrap();
        }
        self.set_secret("nginx_basic", &upstream_credential());
    }

    /// Stores `value` as secret `name` in every proxy's vault, bound (as an operator binds
    /// it) to the services of its catalog that inject it; nothing when none does.
    pub fn set_secret(&self, name: &str, value: &str) {
        for p in &self.proxies {
            let text = std::fs::read(p.dir.join("services.toml")).unwrap();
            let parsed =
                bglass_core::catalog::Catalog::from_bytes(Path::new("services.toml"), text)
                    .unwrap();
            let users: Vec<String> = parsed
                .services()
                .iter()
                .filter(|s| {
                    matches!(&s.kind, bglass_core::catalog::ServiceKind::Http { inject: Some(i), .. } if i.secret.as_str() == name)
                })
                .flat_map(|s| ["--for".to_owned(), s.name.to_string()])
                .collect();
            if users.is_empty() {
                continue;
            }
            let mut child = command("bglass-proxy", self.dir.path())
                .args(["secrets", "set", name])
                .args(&users)
                .arg("--config")
                .arg(&p.config)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(value.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        }
    }

    /// Starts proxy `i` and waits until it answers and has signed its first checkpoint.
    pub fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// Starts proxy `i` with extra arguments to `bglass-proxy run` and waits until it
    /// answers and has signed its first checkpoint.
    pub fn start_with(&mut self, i: usize, extra: &[&str]) {
        self.start_full(i, &[], extra);
    }

    /// Starts proxy `i` under `wrapper` (e.g. `["prlimit", "--nofile=512:512"]`), and waits
    /// until it answers and has signed its first checkpoint.
    pub fn start_wrapped(&mut self, i: usize, wrapper: &[&str]) {
        self.start_full(i, wrapper, &[]);
    }

    fn start_full(&mut self, i: usize, wrapper: &[&str], extra: &[&str]) {
        // Its start event is in the log once it listens: the first checkpoint of this run
        // covers more entries than the log held before.
        let before = self.proxies[i].checkpoint_size();
        self.start_listening_wrapped(i, wrapper, extra);
        let p = &mut self.proxies[i];
        eventually(
            START_DEADLINE,
            &format!("the first checkpoint of proxy {} after its start", p.id),
            || {
                assert_running(p);
                p.checkpoint_size() > before
            },
        );
    }

    /// Starts proxy `i` and returns as soon as it listens, before its first checkpoint (a
    /// fresh log has none for about a second).
    pub fn start_listening(&mut self, i: usize) {
        self.start_listening_wrapped(i, &[], &[]);
    }

    fn start_listening_wrapped(&mut self, i: usize, wrapper: &[&str], extra: &[&str]) {
        let p = &mut self.proxies[i];
        let stderr_path = p.stderr_path();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .unwrap();
        // What this run prints starts here (the file keeps every run's).
        let offset = stderr.metadata().unwrap().len();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin("bglass-proxy"));
                c
            }
            None => Command::new(bin("bglass-proxy")),
        };
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(&p.config)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        p.child = Some(child);
        let listening = format!("bglass-proxy {}: listening on ", p.id);
        let metrics = format!("bglass-proxy {}: metrics listening on ", p.id);
        let (port, metrics_port) =
            eventually(START_DEADLINE, &format!("proxy {} to listen", p.id), || {
                assert_running(p);
                let text = read_from(&stderr_path, offset);
                assert!(
                    !text.contains("metrics listener"),
                    "proxy {} could not listen for metrics: {text}",
                    p.id
                );
                Some((announced(&text, &listening)?, announced(&text, &metrics)?))
            });
        if p.bound {
            assert_eq!(
                (port, metrics_port),
                (p.port, p.metrics_port),
                "proxy {} moved",
                p.id
            );
        } else {
            // From now on it restarts on these ports, and responders find it there.
            p.port = port;
            p.metrics_port = metrics_port;
            p.bound = true;
            crate::toml::edit(&p.config, |doc| {
                doc["listen"] = toml_edit::value(format!("127.0.0.1:{port}"));
                doc["metrics_listen"] = toml_edit::value(format!("127.0.0.1:{metrics_port}"));
            });
            let url = p.url();
            for r in &self.responders {
                crate::toml::edit(&r.config, |doc| {
                    doc["proxy"][i]["url"] = toml_edit::value(&url);
                });
            }
        }
        // It listens: the holds can go.
        self.proxies[i].holds.clear();
    }

    /// Starts every proxy.
    pub fn start_all(&mut self) {
        for i in 0..self.proxies.len() {
            self.start(i);
        }
    }

    /// Runs proxy `i` (`bglass-proxy run` with `extra` arguments) expecting it to refuse to
    /// start: returns its result once it exits. Panics when it starts serving instead (it
    /// says it listens) or neither happens within 60 s.
    pub fn start_refused(&self, i: usize, extra: &[&str]) -> Run {
        let p = &self.proxies[i];
        let mut child = Command::new(bin("bglass-proxy"))
            .arg("run")
            .arg("--config")
            .arg(&p.config)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let listening = format!("bglass-proxy {}: listening on ", p.id);
        let exited = eventually(
            Duration::from_secs(60),
            &format!("proxy {} to refuse to start", p.id),
            || {
                let text = stderr.lock().unwrap().clone();
                if text.contains(&listening) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("proxy {} started serving instead of refusing: {text}", p.id);
                }
                child.try_wait().unwrap()
            },
        );
        // The pipes close with the process; what it wrote is all read then.
        let read_all = |buffer: &Arc<Mutex<String>>| {
            eventually(Duration::from_secs(5), "the proxy's output", || {
                Arc::strong_count(buffer) == 1
            });
            buffer.lock().unwrap().clone()
        };
        Run {
            code: exited.code(),
            stdout: read_all(&stdout),
            stderr: read_all(&stderr),
        }
    }

    /// Stops proxy `i` as an operator does (SIGTERM: it records its stop and signs a final
    /// checkpoint) and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        let p = &mut self.proxies[i];
        if let Some(mut c) = p.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            eventually(
                Duration::from_secs(30),
                &format!("proxy {} to stop on SIGTERM", p.id),
                || c.try_wait().unwrap().is_some(),
            );
            p.hold_ports();
        }
    }

    /// SIGKILLs proxy `i`.
    pub fn kill(&mut self, i: usize) {
        let p = &mut self.proxies[i];
        if let Some(mut c) = p.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            p.hold_ports();
        }
    }

    /// The process id of proxy `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.proxies[i].child.as_ref().map(Child::id)
    }

    /// Uses `port` as the "redis" upstream (any TCP service).
    pub fn set_tcp_port(&mut self, port: u16) {
        self.redis_port = port;
    }

    /// Sends SIGHUP to proxy `i`.
    pub fn hup(&self, i: usize) {
        if let Some(c) = &self.proxies[i].child {
            let _ = Command::new("kill")
                .args(["-HUP", &c.id().to_string()])
                .status();
        }
    }

    /// The responder named `id`.
    pub fn responder(&self, id: &str) -> &Responder {
        self.responders.iter().find(|r| r.id == id).unwrap()
    }

    /// Responder `id`'s key, from the roster entry `bglass enroll` printed.
    pub fn responder_key(&self, id: &str) -> String {
        self.responder(id)
            .entry
            .lines()
            .find_map(|l| l.strip_prefix("key = "))
            .map(|k| k.trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("no key in {id}'s entry"))
    }

    /// Runs `bglass` as responder `id`.
    pub fn bglass(&self, id: &str, args: &[&str]) -> Run {
        let r = self.responder(id);
        run(command("bglass", self.dir.path())
            .env("BGLASS_PASSPHRASE", PASSPHRASE)
            .arg("--config")
            .arg(&r.config)
            .args(args))
    }

    /// Starts `bglass` as responder `id` without waiting (stdout and stderr piped).
    pub fn spawn_bglass(&self, id: &str, args: &[&str]) -> Child {
        let r = self.responder(id);
        command("bglass", self.dir.path())
            .env("BGLASS_PASSPHRASE", PASSPHRASE)
            .arg("--config")
            .arg(&r.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Every proxy's stderr, for failure messages.
    pub fn logs(&self) -> String {
        self.proxies
            .iter()
            .map(|p| {
                format!(
                    "--- {} ({}):\n{}",
                    p.id,
                    p.url(),
                    std::fs::read_to_string(p.stderr_path()).unwrap_or_default()
                )
            })
            .collect()
    }

    /// `bglass access SERVICE --json` as `who`, which must succeed; the request view.
    pub fn access(&self, who: &str, service: &str) -> serde_json::Value {
        let out = self.bglass(
            who,
            &[
                "access",
                service,
                "--reason",
                "test",
                "--incident",
                "INC-T",
                "--json",
            ],
        );
        assert_eq!(
            out.code,
            Some(0),
            "access {service} as {who}: {}",
            out.stderr
        );
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// `bglass status --json` as `who`: one object a proxy (`null` when it printed no JSON).
    pub fn status(&self, who: &str) -> serde_json::Value {
        let out = self.bglass(who, &["status", "--json"]);
        serde_json::from_str(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the first proxy's status, as `who` sees it, reports a rejected catalog
    /// reload; the status then, and the rejection.
    pub fn catalog_rejection(&self, who: &str) -> (serde_json::Value, String) {
        eventually(
            Duration::from_secs(15),
            "a rejected catalog reload in bglass status",
            || {
                let status = self.status(who);
                let rejected = status[0]["status"]["catalog_rejected"].as_str()?.to_owned();
                Some((status, rejected))
            },
        )
    }

    /// `n` new entries in proxy `i`'s log: requests by `who` for a service it does not
    /// have, each refused and recorded as a denial.
    pub fn denials(&self, who: &str, i: usize, n: usize) {
        let raw = crate::raw::Raw::new(
            &self.responder(who).config,
            &self.proxies[i].url(),
            &self.proxies[i].pin,
        );
        for _ in 0..n {
            let answer = raw.send("GET", "/s/nosuch/", None, &[]);
            assert_eq!(answer.code, "unknown_service", "{}", answer.body);
        }
    }

    /// Entries in proxy `i`'s audit log, from its metrics.
    pub fn log_entries(&self, i: usize) -> u64 {
        let metrics = self.metrics(i);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("bglass_audit_log_entries "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no bglass_audit_log_entries in {metrics}"))
    }

    /// Fetches proxy `i`'s metrics.
    pub fn metrics(&self, i: usize) -> String {
        use std::io::Write;
        let mut s =
            std::net::TcpStream::connect(("127.0.0.1", self.proxies[i].metrics_port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}

/// Panics with its stderr when proxy `p` has exited (something else answering on its
/// port, or an old line in its stderr, must not pass for it).
fn assert_running(p: &mut Proxy) {
    if let Some(c) = p.child.as_mut()
        && let Ok(Some(status)) = c.try_wait()
    {
        panic!(
            "proxy {} exited ({status}): {}",
            p.id,
            std::fs::read_to_string(p.stderr_path()).unwrap_or_default()
        );
    }
}

/// The text of `path` from byte `offset` on.
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap().min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Reads `pipe` to its end in a thread; the text so far. The thread drops its handle when
/// the pipe closes.
fn drain(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    text
}

/// Waits until something listens on `port`.
pub fn wait_port(port: u16) {
    eventually(
        Duration::from_secs(20),
        &format!("something to listen on port {port}"),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

impl Drop for World {
    fn drop(&mut self) {
        for p in &mut self.proxies {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut c) = self.nginx.take() {
            crate::upstreams::terminate(&mut c);
        }
        for mut c in self.others.drain(..) {
            crate::upstreams::terminate(&mut c);
        }
    }
}

/// The user the tests run as (the user sshd lets the principal log in as).
pub fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "root".to_owned())
}

/// Every file under `dir`, recursively, as bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, bytes));
        }
    }
    out
}
