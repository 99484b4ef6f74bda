//! Benchmark support: the least a Rust proxy on bglass-proxy's stack does for one request, to
//! measure that stack's floor beside nginx. The same crates and settings as `bglass-proxy`
//! (tokio with a worker per core, rustls TLS 1.3 with Ed25519 and a required client
//! certificate, hyper HTTP/1.1 on both sides, hyper-util's pooled keep-alive client, mimalloc)
//! doing nginx's job in the data-plane benchmark: check the client certificate, set the
//! upstream's `Authorization`, forward, stream the answer back. No roster, grant, hygiene,
//! cookie jar, timeout or metrics.
//!
//! With `--audit DIR` it also does what the proxy's audit costs per request, through the real
//! log code: a `use_start` event encoded, appended and awaited until durable (group commit)
//! before the upstream sees the request, and a `use` event queued once the answer's head is
//! back (the proxy queues it when the body ends; the benchmark's bodies are two bytes).
//!
//! With `--audit-nowait DIR` the `use_start` is appended but not awaited: a diagnostic of
//! what waiting for durability costs (the proxy never forwards before the append is durable).
//!
//! floor-proxy DIR UPSTREAM_PORT AUTHORIZATION [--audit LOG_DIR | --audit-nowait LOG_DIR]
//!   DIR holds ca.pem, server.pem and server.key (written by dataplane-bench); prints
//!   `listening on PORT` once serving on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bglass_core::audit::event::{EVENT_VERSION, Event, EventKind};
use bglass_core::audit::log::{AuditLog, LogConfig};
use bglass_core::id::{GrantId, ProxyId, ResponderId, ServiceName};
use bglass_core::timestamp;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    client: Client<HttpConnector, Incoming>,
    upstream: String,
    auth: HeaderValue,
    audit: Option<Audit>,
}

/// The audit work of one request, as the proxy does it.
struct Audit {
    log: AuditLog,
    proxy: ProxyId,
    actor: ResponderId,
    grant: GrantId,
    service: ServiceName,
    /// Await the `use_start` until durable before forwarding (as the proxy does).
    wait: bool,
}

impl Audit {
    fn event(&self, kind: EventKind) -> Vec<u8> {
        Event {
            v: EVENT_VERSION,
            time_ms: timestamp::now_ms(),
            proxy: self.proxy.clone(),
            actor: Some(self.actor.clone()),
            drill: None,
            event: kind,
        }
        .to_bytes()
        .unwrap()
    }
}

async fn forward(floor: Arc<Floor>, req: Request<Incoming>) -> Response<Incoming> {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .to_owned();
    parts.uri = format!("http://{}{path}", floor.upstream)
        .parse::<Uri>()
        .unwrap();
    parts
        .headers
        .insert(http::header::AUTHORIZATION, floor.auth.clone());
    parts.headers.insert(
        http::header::HOST,
        HeaderValue::from_str(&floor.upstream).unwrap(),
    );
    let method = parts.method.as_str().to_owned();
    let start = match &floor.audit {
        Some(audit) => {
            let entry = audit.event(EventKind::UseStart {
                grant: audit.grant.clone(),
                service: audit.service.clone(),
                method: method.clone(),
                path: path.clone(),
            });
            let submitted = audit.log.submit(entry).unwrap();
            if audit.wait {
                Some(submitted.await.unwrap().index)
            } else {
                None
            }
        }
        None => None,
    };
    let response = floor
        .client
        .request(Request::from_parts(parts, body))
        .await
        .unwrap();
    if let Some(audit) = &floor.audit {
        let entry = audit.event(EventKind::Use {
            grant: audit.grant.clone(),
            service: audit.service.clone(),
            method,
            path,
            status: response.status().as_u16(),
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: timestamp::millis(started.elapsed()),
            start,
        });
        drop(audit.log.submit(entry).unwrap());
    }
    response
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: floor-proxy DIR UPSTREAM_PORT AUTHORIZATION [--audit[-nowait] LOG_DIR]";
    let dir = PathBuf::from(args.first().expect(usage));
    let upstream = format!("127.0.0.1:{}", args.get(1).expect(usage));
    let auth = HeaderValue::from_str(args.get(2).expect(usage)).unwrap();
    let audit = match (args.get(3).map(String::as_str), args.get(4)) {
        (Some(flag @ ("--audit" | "--audit-nowait")), Some(log_dir)) => {
            let proxy = ProxyId::new("floor").unwrap();
            let key = Arc::new(bglass_core::keys::SigningKey::from_seed(&[7; 32]).unwrap());
            let config = LogConfig::new(PathBuf::from(log_dir), proxy.clone(), key);
            let (log, _) = AuditLog::open(config, |_, _| Ok(())).unwrap();
            Some(Audit {
                log,
                proxy,
                actor: ResponderId::new("alice").unwrap(),
                grant: GrantId::new("g-0123456789abcdef").unwrap(),
                service: ServiceName::new("bench").unwrap(),
                wait: flag == "--audit",
            })
        }
        (None, _) => None,
        _ => panic!("{usage}"),
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = vec![CertificateDer::from_pem_file(dir.join("server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let floor = Arc::new(Floor {
        client: Client::builder(TokioExecutor::new()).build(connector),
        upstream,
        auth,
        audit,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap().port());
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let floor = Arc::clone(&floor);
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let floor = Arc::clone(&floor);
                async move { Ok::<_, Infallible>(forward(floor, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
