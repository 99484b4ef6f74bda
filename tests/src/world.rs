//! A small world on loopback for end-to-end tests: proxies made by the real
//! `bglass-proxy init` and run as processes, responders enrolled by the real `bglass enroll`,
//! and a real nginx that accepts only the credential the proxy injects.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Run, bin, command, run};

/// The passphrase of every test responder.
pub const PASSPHRASE: &str = "correct horse battery";
/// The upstream user nginx accepts.
pub const UPSTREAM_USER: &str = "grafana-sa";
/// The upstream password nginx accepts (must never reach a responder).
pub const UPSTREAM_PASSWORD: &str = "upstream-s3cret-7f1c";

/// A free loopback port (bound, then released), never the same twice in this process:
/// tests run in parallel threads, and the kernel may hand a just-released port out again.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

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
    /// TLS port.
    pub port: u16,
    /// Metrics port.
    pub metrics_port: u16,
    /// The CA pin.
    pub pin: String,
    /// The signing key.
    pub key: String,
    child: Option<Child>,
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
    nginx: Option<Child>,
    /// A port nothing listens on (for a "down" upstream).
    pub dead_port: u16,
    /// sshd's port and host public key, once started.
    pub sshd: Option<(u16, String)>,
    /// Redis's port, once started.
    pub redis_port: u16,
    others: Vec<Child>,
}

fn output(cmd: &mut Command) -> Run {
    run(cmd)
}

impl World {
    /// Proxies named `proxies`, responders `(id, roles)` enrolled with all proxies in order.
    pub fn new(proxies: &[&str], responders: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut world = World {
            proxies: Vec::new(),
            responders: Vec::new(),
            nginx_port: 0,
            nginx: None,
            dead_port: free_port(),
            sshd: None,
            redis_port: 0,
            others: Vec::new(),
            dir,
        };
        for id in proxies {
            let port = free_port();
            let metrics_port = free_port();
            let pdir = world.dir.path().join(id);
            let out = output(
                command("bglass-proxy", world.dir.path())
                    .args(["init", "--dir"])
                    .arg(&pdir)
                    .args([
                        "--id",
                        id,
                        "--listen",
                        &format!("127.0.0.1:{port}"),
                        "--metrics",
                        &format!("127.0.0.1:{metrics_port}"),
                    ]),
            );
            assert_eq!(out.code, Some(0), "init {id}: {}", out.stderr);
            let field = |name: &str| {
                out.stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_else(|| panic!("init printed no {name}: {}", out.stdout))
            };
            world.proxies.push(Proxy {
                id: (*id).to_owned(),
                config: pdir.join("proxy.toml"),
                dir: pdir,
                port,
                metrics_port,
                pin: field("pin"),
                key: field("signing key"),
                child: None,
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
            let out = output(&mut cmd);
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
        let text = catalog
            .replace("{nginx}", &self.nginx_port.to_string())
            .replace("{dead}", &self.dead_port.to_string())
            .replace("{ssh}", &ssh_port.to_string())
            .replace("{hostkey}", &host_key)
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

    /// Starts nginx on loopback, accepting only `UPSTREAM_USER:UPSTREAM_PASSWORD`.
    pub fn start_nginx(&mut self) {
        let port = free_port();
        let prefix = self.dir.path().join("nginx");
        std::fs::create_dir_all(prefix.join("www/api")).unwrap();
        std::fs::create_dir_all(prefix.join("tmp")).unwrap();
        std::fs::write(prefix.join("www/api/health"), "nginx says ok\n").unwrap();
        std::fs::write(prefix.join("www/big"), vec![b'x'; 1 << 20]).unwrap();
        std::fs::write(
            prefix.join("htpasswd"),
            format!("{UPSTREAM_USER}:{{PLAIN}}{UPSTREAM_PASSWORD}\n"),
        )
        .unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        let p = prefix.display();
        let conf = format!(
            "{user}worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    root {p}/www;\n    location / {{\n      auth_basic \"tool\";\n      auth_basic_user_file {p}/htpasswd;\n    }}\n    location = /slow {{\n      auth_basic \"tool\";\n      auth_basic_user_file {p}/htpasswd;\n      limit_rate 100k;\n      alias {p}/www/big;\n    }}\n    location = /echo-headers {{\n      default_type text/plain;\n      return 200 \"xff=$http_x_forwarded_for|webauth=$http_x_webauth_user|realip=$http_x_real_ip|cookie=$http_cookie\";\n    }}\n    location = /set-cookie {{\n      auth_basic \"tool\";\n      auth_basic_user_file {p}/htpasswd;\n      add_header Set-Cookie \"session=minted-with-the-credential; Path=/; HttpOnly\" always;\n      add_header bglass-refusal \"your_session_expired\" always;\n      add_header X-Echo-Auth $http_authorization always;\n      alias {p}/www/api/health;\n    }}\n  }}\n}}\n",
            user = if root { "user root;\n" } else { "" },
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!(
                    "nginx is not installed; scripts/test installs it (apt-get install nginx-light)"
                )
            });
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.nginx = Some(child);
        self.nginx_port = port;
        wait_port(port);
    }

    /// Starts OpenSSH's sshd on loopback, trusting the SSH CAs of every proxy (plus
    /// `extra_cas`), with the principal `breakglass` allowed to log in as the current user.
    pub fn start_sshd(&mut self, extra_cas: &[String]) {
        let port = free_port();
        let dir = self.dir.path().join("sshd");
        std::fs::create_dir_all(dir.join("principals")).unwrap();
        let key = dir.join("host_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success());
        let host_pub = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let host_pub = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let mut cas: Vec<String> = self
            .proxies
            .iter()
            .map(|p| std::fs::read_to_string(p.dir.join("ssh_ca.pub")).unwrap())
            .collect();
        cas.extend(extra_cas.iter().cloned());
        std::fs::write(dir.join("ca.pub"), cas.join("\n")).unwrap();
        std::fs::write(dir.join("principals").join(current_user()), "breakglass\n").unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\nTrustedUserCAKeys {d}/ca.pub\nAuthorizedPrincipalsFile {d}/principals/%u\nAuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
            ),
        )
        .unwrap();
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("sshd is not installed; scripts/test installs openssh-server")
            });
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.others.push(child);
        wait_port(port);
        self.sshd = Some((port, host_pub));
    }

    /// Starts redis-server on loopback (no persistence).
    pub fn start_redis(&mut self) {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}; scripts/test installs redis-server"));
        self.others.push(child);
        wait_port(port);
        self.redis_port = port;
    }

    /// Starts proxy `i` and waits until it answers and has signed its first checkpoint.
    pub fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// Starts proxy `i` with extra arguments to `bglass-proxy run` and waits until it
    /// answers.
    pub fn start_with(&mut self, i: usize, extra: &[&str]) {
        self.start_full(i, &[], extra);
    }

    /// Starts proxy `i` under `wrapper` (e.g. `["prlimit", "--nofile=512:512"]`), and waits
    /// until it answers.
    pub fn start_wrapped(&mut self, i: usize, wrapper: &[&str]) {
        self.start_full(i, wrapper, &[]);
    }

    fn start_full(&mut self, i: usize, wrapper: &[&str], extra: &[&str]) {
        self.start_listening_wrapped(i, wrapper, extra);
        // Its first checkpoint follows its start event within a second.
        std::thread::sleep(Duration::from_millis(1200));
        // Something else answering on the port would pass the connect test: the proxy
        // itself must still be running.
        if let Some(c) = self.proxies[i].child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "proxy {} exited ({status}): {}",
                self.proxies[i].id,
                std::fs::read_to_string(self.proxies[i].stderr_path()).unwrap_or_default()
            );
        }
    }

    /// Starts proxy `i` and returns as soon as its port accepts connections, before its
    /// first checkpoint (a fresh log has none for about a second).
    pub fn start_listening(&mut self, i: usize) {
        self.start_listening_wrapped(i, &[], &[]);
    }

    fn start_listening_wrapped(&mut self, i: usize, wrapper: &[&str], extra: &[&str]) {
        let p = &mut self.proxies[i];
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.stderr_path())
            .unwrap();
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
        let port = p.port;
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(c) = self.proxies[i].child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "proxy {} exited ({status}): {}",
                    self.proxies[i].id,
                    std::fs::read_to_string(self.proxies[i].stderr_path()).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "proxy did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts every proxy.
    pub fn start_all(&mut self) {
        for i in 0..self.proxies.len() {
            self.start(i);
        }
    }

    /// Runs proxy `i` (`bglass-proxy run` with `extra` arguments) expecting it to refuse to
    /// start: returns its result once it exits. Panics when it starts serving instead (its
    /// port answers) or neither happens within 60 s.
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
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return child.wait_with_output().unwrap().into();
            }
            if std::net::TcpStream::connect(("127.0.0.1", p.port)).is_ok() {
                let _ = child.kill();
                let out: Run = child.wait_with_output().unwrap().into();
                panic!(
                    "proxy {} started serving instead of refusing: {}",
                    p.id, out.stderr
                );
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("proxy {} neither refused nor served within 60 s", p.id);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops proxy `i` as an operator does (SIGTERM: it records its stop and signs a final
    /// checkpoint) and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.proxies[i].child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let started = Instant::now();
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                if started.elapsed() > Duration::from_secs(30) {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("proxy {} did not stop on SIGTERM", self.proxies[i].id);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILLs proxy `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.proxies[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
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

    /// Fetches proxy `i`'s metrics.
    pub fn metrics(&self, i: usize) -> String {
        use std::io::{Read, Write};
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

/// Waits until something listens on `port`.
pub fn wait_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
            let _ = c.kill();
            let _ = c.wait();
        }
        for mut c in self.others.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
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

/// The catalog of the SSH and TCP tests: `bastion` (ssh, no approval), `brief` (ssh, 5 s
/// grants), `impostor` (ssh, another host key pinned), `redis` (tcp). The three SSH
/// services are one sshd, so they share the principal `breakglass`, and say so.
pub const SSH_CATALOG: &str = r#"version = 1

[[service]]
name = "bastion"
kind = "ssh"
description = "SSH bastion"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{hostkey}"

[[service]]
name = "brief"
kind = "ssh"
description = "SSH with 5-second grants"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "5s"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "{hostkey}"

[[service]]
name = "impostor"
kind = "ssh"
description = "The same host, with another key pinned"
upstream = "127.0.0.1:{ssh}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
principals = ["breakglass"]
share_principals = true
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0/BI1KeVrrphI4X6+F7i7ANSpCOIVU1XEA7twXn56K"

[[service]]
name = "redis"
kind = "tcp"
description = "A TCP service"
upstream = "127.0.0.1:{redis}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
probe = "redis"
"#;

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

/// A catalog for tests: `grafana` (no approval) and `argocd` (one approval, emergency
/// bypass) on nginx, `down` on a dead port, `prom` on nginx with a 30 s max TTL.
pub const TEST_CATALOG: &str = r#"version = 1

[[service]]
name = "grafana"
kind = "http"
description = "Dashboards"
upstream = "127.0.0.1:{nginx}"
max_ttl = "4h"
default_ttl = "1h"
approvals = 0
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }

[[service]]
name = "argocd"
kind = "http"
description = "Deploys"
upstream = "127.0.0.1:{nginx}"
max_ttl = "2h"
default_ttl = "30m"
approvals = 1
emergency_bypass = true
emergency_ttl = "10m"
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }

[[service]]
name = "prom"
kind = "http"
description = "Metrics, short grants"
upstream = "127.0.0.1:{nginx}"
max_ttl = "1h"
default_ttl = "3s"
approvals = 0
health = { path = "/api/health", expect_status = 200, auth = true }
inject = { header = "Authorization", secret = "nginx_basic", format = "Basic {}" }

[[service]]
name = "down"
kind = "http"
description = "A tool that is down"
upstream = "127.0.0.1:{dead}"
max_ttl = "1h"
default_ttl = "30m"
approvals = 0
health = { path = "/", expect_status = 200 }
"#;
