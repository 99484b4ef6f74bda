//! HTTPS upstreams for end-to-end tests: certificates made with rcgen (a CA and a server
//! certificate for a DNS name), a real nginx serving them with TLS on loopback that
//! requires the injected bearer token, and a plain TCP listener that records what clients
//! send to a port they believe speaks TLS.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ports::PortHold;
use crate::upstreams::{nginx_user_line, spawn_nginx};
use crate::wait::eventually;
use crate::world::wait_port;

/// `sha256:<hex>` of DER bytes, as the catalog writes pins.
pub fn pin(der: &[u8]) -> String {
    bglass_tls::pin_of(der).to_string()
}

/// A CA and a server certificate it signed.
#[derive(Debug)]
pub struct Certs {
    /// The server certificate followed by the CA, PEM (what nginx sends).
    pub chain_pem: String,
    /// The server's private key, PEM.
    pub key_pem: String,
    /// The CA certificate's pin.
    pub ca_pin: String,
    /// The server certificate's pin.
    pub leaf_pin: String,
}

/// A CA and a certificate for `dns_name` signed by it (ECDSA P-256).
pub fn ca_and_server(dns_name: &str) -> Certs {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test upstream CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![dns_name.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, dns_name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&key, &issuer).unwrap();
    Certs {
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
        ca_pin: pin(ca.der()),
        leaf_pin: pin(leaf.der()),
    }
}

/// nginx with TLS on loopback: `port` speaks TLS 1.2 and 1.3, `port_tls12` TLS 1.2 only.
/// `/healthz` answers 200 to anyone; everything else 200 only with
/// `Authorization: Bearer <token>`, else 401. The access log records each request's
/// Authorization header and Host.
#[derive(Debug)]
pub struct TlsNginx {
    /// TLS 1.2 and 1.3.
    pub port: u16,
    /// TLS 1.2 only.
    pub port_tls12: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl TlsNginx {
    /// Starts nginx in `dir` with `certs`. nginx is another program: its ports are held
    /// until it listens on them.
    pub fn start(dir: &Path, certs: &Certs, token: &str) -> Self {
        let holds = [PortHold::new(), PortHold::new()];
        let (port, port_tls12) = (holds[0].port(), holds[1].port());
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("chain.pem"), &certs.chain_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &certs.key_pem).unwrap();
        let p = dir.display();
        let server = |port: u16, protocols: &str| {
            format!(
                "  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {p}/chain.pem;\n    ssl_certificate_key {p}/key.pem;\n    ssl_protocols {protocols};\n    default_type text/plain;\n    location = /healthz {{ return 200 \"healthy\\n\"; }}\n    location / {{\n      if ($http_authorization != \"Bearer {token}\") {{ return 401 \"no token\\n\"; }}\n      return 200 \"kubernetes says ok\\n\";\n    }}\n  }}\n"
            )
        };
        let conf = format!(
            "{user}worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n  log_format audit '\"$request\" $status auth=\"$http_authorization\" host=\"$host\" sni=\"$ssl_server_name\" tls=\"$ssl_protocol\"';\n  access_log {p}/access.log audit;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n{a}{b}}}\n",
            user = nginx_user_line(),
            a = server(port, "TLSv1.2 TLSv1.3"),
            b = server(port_tls12, "TLSv1.2"),
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = spawn_nginx(dir);
        wait_port(port);
        wait_port(port_tls12);
        drop(holds);
        Self {
            port,
            port_tls12,
            dir: dir.to_path_buf(),
            child: Some(child),
        }
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for TlsNginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::upstreams::terminate(&mut c);
        }
    }
}

/// A loopback TCP listener that records the first bytes of every connection (up to 16 KiB,
/// or until the client stops sending for a second) and then closes it, answering nothing.
#[derive(Debug)]
pub struct Recorder {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    /// Starts the recorder in a thread of this process.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let record = Arc::clone(&record);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    while got.len() < 16 * 1024 {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    record
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(got);
                });
            }
        });
        Self { port, seen }
    }

    /// What each finished connection sent, in order of finishing.
    pub fn seen(&self) -> Vec<Vec<u8>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `n` connections have been recorded.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Vec<u8>> {
        eventually(
            within,
            &format!("{n} connection(s) to reach the recorder"),
            || {
                let seen = self.seen();
                (seen.len() >= n).then_some(seen)
            },
        )
    }
}

/// Whether `bytes` begin with a TLS handshake record holding a ClientHello.
pub fn is_client_hello(bytes: &[u8]) -> bool {
    // Record: type 22 (handshake), version 3.x, length; then handshake type 1.
    bytes.len() > 5 && bytes[0] == 22 && bytes[1] == 3 && bytes[5] == 1
}
