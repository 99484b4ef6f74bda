//! `bglass open SERVICE [--local 127.0.0.1:PORT] [--no-browser]`: a local forwarder on
//! loopback that adds your grant to every request and relays it to the proxy's
//! `/s/SERVICE/`. Prints the URL and opens a browser when one is present. Stops when the
//! grant ends.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bglass_core::api::GRANT_HEADER;
use bglass_core::id::ServiceName;
use bglass_core::timestamp;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;

use super::block_on;
use crate::cli::OpenArgs;
use crate::client::Session;
use crate::error::{CliError, CliResult};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

struct Forward {
    http: reqwest::Client,
    base: String,
    token: String,
}

async fn relay(f: Arc<Forward>, req: hyper::Request<Incoming>) -> hyper::Response<Body> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let url = format!("{}{path}", f.base);
    let mut request = f
        .http
        .request(req.method().clone(), &url)
        .header(GRANT_HEADER, &f.token);
    for (name, value) in req.headers() {
        if name != hyper::header::HOST && name != hyper::header::CONNECTION {
            request = request.header(name, value);
        }
    }
    let stream = http_body_util::BodyStream::new(req.into_body())
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
    request = request.body(reqwest::Body::wrap_stream(stream));
    match request.send().await {
        Ok(response) => {
            let mut builder = hyper::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONNECTION {
                    builder = builder.header(name, value);
                }
            }
            let body = StreamBody::new(
                response
                    .bytes_stream()
                    .map_ok(Frame::data)
                    .map_err(|e| Box::new(e) as BoxError),
            );
            builder
                .body(BodyExt::boxed(body))
                .unwrap_or_else(|_| hyper::Response::new(empty()))
        }
        Err(e) => {
            let mut r = hyper::Response::new(
                http_body_util::Full::new(Bytes::from(format!(
                    "bglass: the proxy did not answer: {e}\n"
                )))
                .map_err(|never| match never {})
                .boxed(),
            );
            *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            r
        }
    }
}

fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Runs `bglass open`.
pub fn run(config: Option<&Path>, args: OpenArgs) -> CliResult {
    let service =
        ServiceName::new(&args.service).map_err(|e| CliError::user(format!("service: {e}")))?;
    if !args.local.ip().is_loopback() {
        return Err(
            CliError::user("--local must be a loopback address (127.0.0.1:PORT)")
                .with_hint("the forwarder adds your grant to every request: never expose it"),
        );
    }
    let session = Session::open(config)?;
    let now = timestamp::now_ms() / 1000;
    let (grant, conn) = session
        .held_grants(&service)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::internal("no grant"))?;
    let forward = Arc::new(Forward {
        http: conn.http.clone(),
        base: format!("{}/s/{service}", conn.entry.url.trim_end_matches('/')),
        token: grant.token.clone(),
    });
    let no_browser = args.no_browser;
    block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.local)
            .await
            .map_err(|e| CliError::user(format!("cannot listen on {}: {e}", args.local)))?;
        let local: SocketAddr = listener.local_addr().map_err(CliError::internal)?;
        let url = format!("http://{local}/");
        crate::outln!(
            "{service} is at {url} until {} (grant {})",
            timestamp::format_secs(grant.exp),
            grant.id
        )?;
        eprintln!("Press Ctrl-C to stop.");
        if !no_browser {
            let _ = std::process::Command::new("xdg-open")
                .arg(&url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
        let until = std::time::Duration::from_secs(grant.exp.saturating_sub(now));
        let serve = async {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let forward = Arc::clone(&forward);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let forward = Arc::clone(&forward);
                        async move { Ok::<_, std::convert::Infallible>(relay(forward, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        };
        tokio::select! {
            () = serve => Ok(()),
            () = tokio::time::sleep(until) => {
                eprintln!("the grant for {service} ended; the forwarder stops");
                Ok(())
            }
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
