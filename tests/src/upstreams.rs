//! The real upstreams of the end-to-end tests, run as processes on loopback: nginx (which
//! accepts only the credential the proxy injects), OpenSSH's sshd (which trusts the proxies'
//! SSH CAs) and redis.
//!
//! They are other programs, so they cannot take a listener from the test: each gets a port
//! held by a [`PortHold`] until it listens (all three bind with `SO_REUSEADDR`, which takes
//! the held port over), so that no parallel test is handed the same port meanwhile.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::ports::PortHold;
use crate::world::{UPSTREAM_PASSWORD, UPSTREAM_USER, World, current_user, wait_port};

/// nginx's `user` line: run as root, its workers would otherwise drop to `nobody`, who
/// cannot read the test's directories.
pub fn nginx_user_line() -> &'static str {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if root { "user root;\n" } else { "" }
}

/// Runs nginx in the foreground with `prefix/nginx.conf`, relative paths under `prefix`.
pub fn spawn_nginx(prefix: &Path) -> Child {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("nginx is not installed; scripts/test installs it (apt-get install nginx-light)")
        });
    Command::new(nginx)
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Stops a server the way its operator would: SIGTERM, then SIGKILL if it has not exited
/// within 5 s. nginx's master stops its workers on SIGTERM; killed outright, it leaves them
/// running (and holding their ports) as orphans.
pub fn terminate(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl World {
    /// Starts nginx on loopback, accepting only `UPSTREAM_USER:UPSTREAM_PASSWORD`.
    pub fn start_nginx(&mut self) {
        let hold = PortHold::new();
        let port = hold.port();
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
        let p = prefix.display();
        let conf = format!(
            "{user}worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    root {p}/www;\n    location / {{\n      auth_basic \"tool\";\n      auth_basic_user_file {p}/htpasswd;\n    }}\n    location = /slow {{\n      auth_basic \"tool\";\n      auth_basic_user_file {p}/htpasswd;\n      limit_rate 100k;\n      alias {p}/www/big;\n    }}\n    location = /echo-headers {{\n      default_type text/plain;\n      return 200 \"xff=$http_x_forwarded_for|webauth=$http_x_webauth_user|realip=$http_x_real_ip|cookie=$http_cookie\";\n    }}\n    location = /set-cookie {{\n      auth_basic \"tool\";\n      auth_basic_user_file {p}/htpasswd;\n      add_header Set-Cookie \"session=minted-with-the-credential; Path=/; HttpOnly\" always;\n      add_header bglass-refusal \"your_session_expired\" always;\n      add_header X-Echo-Auth $http_authorization always;\n      alias {p}/www/api/health;\n    }}\n  }}\n}}\n",
            user = nginx_user_line(),
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let child = spawn_nginx(&prefix);
        self.nginx = Some(child);
        self.nginx_port = port;
        wait_port(port);
        drop(hold);
    }

    /// Starts OpenSSH's sshd on loopback, trusting the SSH CAs of every proxy (plus
    /// `extra_cas`), with the principal `breakglass` allowed to log in as the current user.
    pub fn start_sshd(&mut self, extra_cas: &[String]) {
        let mut cas: Vec<String> = self
            .proxies
            .iter()
            .map(|p| std::fs::read_to_string(p.dir.join("ssh_ca.pub")).unwrap())
            .collect();
        cas.extend(extra_cas.iter().cloned());
        self.sshd = Some(self.spawn_sshd("sshd", &cas));
    }

    /// Starts a second sshd for recorded services (`{rssh}`, `{rhostkey}` in catalogs): it
    /// trusts every proxy's session CA and not the responders' CA.
    pub fn start_recorded_sshd(&mut self) {
        let cas: Vec<String> = self
            .proxies
            .iter()
            .map(|p| std::fs::read_to_string(p.dir.join("ssh_session_ca.pub")).unwrap())
            .collect();
        self.recorded_sshd = Some(self.spawn_sshd("recorded-sshd", &cas));
    }

    /// Starts sshd in `name` trusting `cas`; returns its port and host key.
    fn spawn_sshd(&mut self, name: &str, cas: &[String]) -> (u16, String) {
        let hold = PortHold::new();
        let port = hold.port();
        let dir = self.dir.path().join(name);
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
        drop(hold);
        (port, host_pub)
    }

    /// Where `bglass ssh --save-cert` keeps responder `id`'s keys and certificates.
    pub fn ssh_dir(&self, id: &str) -> std::path::PathBuf {
        self.responder(id)
            .config
            .parent()
            .unwrap()
            .join("state/ssh")
    }

    /// Starts redis-server on loopback (no persistence).
    pub fn start_redis(&mut self) {
        let hold = PortHold::new();
        let port = hold.port();
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
        drop(hold);
        self.redis_port = port;
    }
}
