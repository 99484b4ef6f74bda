//! `bglass open SERVICE [--local 127.0.0.1:PORT] [--no-browser]`: a local forwarder on
//! loopback that adds your grant to every request and relays it to the proxy's
//! `/s/SERVICE/`. Prints the URL and opens a browser when one is present. Stops when the
//! grant ends.
//!
//! The forwarder lends your grant to whoever talks to it, so it talks only to your browser:
//! the printed URL carries a random session secret that, on first use, sets an HttpOnly,
//! SameSite=Strict cookie and redirects to the clean URL; every other request needs that
//! cookie. The `Host` header must name the forwarder itself (DNS rebinding), and unsafe
//! methods from another origin are refused (cross-site forms). Neither the cookie nor the
//! secret is relayed to the proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bglass_core::api::GRANT_HEADER;
use bglass_core::headers::is_hop_by_hop;
use bglass_core::id::ServiceName;
use bglass_core::timestamp;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;

use super::block_on;
use crate::cli::OpenArgs;
use crate::client::Session;
use crate::error::{CliError, CliResult};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The query parameter that carries the session secret in the printed URL.
const SESSION_PARAM: &str = "bglass-session";

/// Who may use the forwarder: the session secret, the one-time secret given to the
/// browser on its command line, and the forwarder's own names.
#[derive(Debug)]
struct Gate {
    /// The session secret: in the printed URL, and the cookie's value.
    secret: String,
    /// A secret for the browser's command line (visible to other local users in the
    /// process list): valid once.
    launch: Mutex<Option<String>>,
    /// The cookie's name (per port: cookies are shared across a host's ports).
    cookie: String,
    /// `Host` values that name the forwarder.
    hosts: Vec<String>,
    /// Origins of the forwarder's own pages.
    origins: Vec<String>,
    /// With `--kubeconfig`: the secret that starts the path of the kubeconfig's server URL
    /// (`/kube-SECRET/…`). kubectl sends no cookies, and no bearer token over plain HTTP.
    kube: Option<String>,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Relay it to the proxy.
    Relay,
    /// The URL carried a valid secret: set the cookie and redirect to `location`.
    StartSession {
        /// The clean URL (path and query without the secret).
        location: String,
    },
    /// Refuse it (403) with this reason.
    Refuse(Refusal),
}

/// Why the forwarder refuses a request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
enum Refusal {
    /// The request names another host (DNS rebinding) or another authority.
    #[error(
        "this forwarder answers only requests for {ours} (Host was {host:?}); a page that reaches it under another name is refused"
    )]
    ForeignHost {
        /// The forwarder's first origin.
        ours: String,
        /// The request's Host.
        host: String,
    },
    /// The session secret came with a method other than GET.
    #[error("open the URL that `bglass open` printed in your browser")]
    SecretNotGet,
    /// The session secret in the URL is wrong or used up.
    #[error(
        "the session secret in this URL is wrong or was already used; open the URL that `bglass open` printed"
    )]
    BadSecret,
    /// No session cookie.
    #[error(
        "no session: open the URL that `bglass open` printed (it carries the session secret); other users and other sites cannot use this forwarder"
    )]
    NoSession,
    /// An unsafe method from another origin.
    #[error(
        "a {method} from another origin ({origin:?}) is refused: only the forwarder's own pages may change things"
    )]
    CrossOrigin {
        /// The method.
        method: Method,
        /// The request's Origin.
        origin: String,
    },
    /// An unsafe method from another site.
    #[error(
        "a {method} from another site (Sec-Fetch-Site: {site}) is refused: only the forwarder's own pages may change things"
    )]
    CrossSite {
        /// The method.
        method: Method,
        /// The request's Sec-Fetch-Site.
        site: String,
    },
}

fn random_hex(bytes: usize) -> CliResult<String> {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| CliError::internal("random generator failed"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Gate {
    fn new(local: SocketAddr) -> CliResult<Self> {
        let port = local.port();
        let mut hosts = vec![local.to_string(), format!("localhost:{port}")];
        if port == 80 {
            // Browsers leave the default port out of Host and Origin.
            hosts.push(match local {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            });
            hosts.push("localhost".to_owned());
        }
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Ok(Self {
            secret: random_hex(32)?,
            launch: Mutex::new(Some(random_hex(32)?)),
            cookie: format!("bglass-session-{port}"),
            hosts,
            origins,
            kube: None,
        })
    }

    /// The rest of `path` after the kubeconfig's secret prefix, when it starts with it.
    fn kube_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        let secret = self.kube.as_deref()?;
        let rest = path.strip_prefix("/kube-")?;
        let (given, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        same_secret(given, secret).then_some(tail)
    }

    /// The URL to print: reusable for this session.
    fn url(&self, local: SocketAddr) -> String {
        format!("http://{local}/?{SESSION_PARAM}={}", self.secret)
    }

    /// The URL for the browser's command line: valid once.
    fn launch_url(&self, local: SocketAddr) -> Option<String> {
        let launch = self
            .launch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        launch
            .as_ref()
            .map(|t| format!("http://{local}/?{SESSION_PARAM}={t}"))
    }

    fn names_us(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether the request carries the session cookie.
    fn has_cookie(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == self.cookie && same_secret(value, &self.secret))
    }

    /// The secret in the query, if any: whether it is valid (the one-time secret is used
    /// up here), and the path and query without it.
    fn take_secret(&self, path: &str, query: Option<&str>) -> Option<(bool, String)> {
        let query = query?;
        let mut given = None;
        let mut rest = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some((SESSION_PARAM, value)) => given = Some(value),
                _ if pair == SESSION_PARAM => given = Some(""),
                _ => rest.push(pair),
            }
        }
        let given = given?;
        let valid = if same_secret(given, &self.secret) {
            true
        } else {
            let mut launch = self
                .launch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if launch.as_deref().is_some_and(|t| same_secret(given, t)) {
                *launch = None;
                true
            } else {
                false
            }
        };
        // Never a redirect off the forwarder ("//host/" is another host to a browser).
        let path = if path.starts_with('/') && !path.starts_with("//") {
            path
        } else {
            "/"
        };
        let location = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", rest.join("&"))
        };
        Some((valid, location))
    }

    /// Decides what to do with a request.
    fn admit(&self, method: &Method, uri: &hyper::Uri, headers: &HeaderMap) -> Admission {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let authority_ok = uri.authority().is_none_or(|a| self.names_us(a.as_str()));
        if !self.names_us(host) || !authority_ok {
            return Admission::Refuse(Refusal::ForeignHost {
                ours: self
                    .origins
                    .first()
                    .map_or("itself", String::as_str)
                    .to_owned(),
                host: host.to_owned(),
            });
        }
        if self.kube_path(uri.path()).is_some() {
            // kubectl with the kubeconfig `bglass open --kubeconfig` wrote.
            return Admission::Relay;
        }
        let carries_secret = uri.query().is_some_and(|q| {
            q.split('&')
                .any(|p| p.split_once('=').map_or(p, |(name, _)| name) == SESSION_PARAM)
        });
        if carries_secret && *method != Method::GET {
            // Only a browser opening the URL starts a session (and uses up a one-time secret).
            return Admission::Refuse(Refusal::SecretNotGet);
        }
        if let Some((valid, location)) = self.take_secret(uri.path(), uri.query()) {
            if !valid {
                return Admission::Refuse(Refusal::BadSecret);
            }
            return Admission::StartSession { location };
        }
        if !self.has_cookie(headers) {
            return Admission::Refuse(Refusal::NoSession);
        }
        let safe = [Method::GET, Method::HEAD, Method::OPTIONS].contains(method);
        if !safe {
            if let Some(origin) = headers.get(header::ORIGIN) {
                let origin = origin.to_str().unwrap_or_default();
                if !self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                    return Admission::Refuse(Refusal::CrossOrigin {
                        method: method.clone(),
                        origin: origin.to_owned(),
                    });
                }
            }
            if let Some(site) = headers.get("sec-fetch-site") {
                let site = site.to_str().unwrap_or_default();
                if !matches!(site, "same-origin" | "none") {
                    return Admission::Refuse(Refusal::CrossSite {
                        method: method.clone(),
                        site: site.to_owned(),
                    });
                }
            }
        }
        Admission::Relay
    }

    /// The request's Cookie header without the forwarder's cookie (`None` when nothing is left).
    fn strip_cookie(&self, headers: &HeaderMap) -> Option<String> {
        let kept: Vec<&str> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| {
                !pair.is_empty()
                    && pair
                        .split_once('=')
                        .is_none_or(|(name, _)| name != self.cookie)
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }
}

fn text_response(status: StatusCode, text: String) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(
        http_body_util::Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

struct Forward {
    http: reqwest::Client,
    base: String,
    token: String,
    gate: Gate,
}

/// Answers one request from the browser: refused, a new session, or relayed.
async fn serve(f: Arc<Forward>, req: hyper::Request<Incoming>) -> hyper::Response<Body> {
    match f.gate.admit(req.method(), req.uri(), req.headers()) {
        Admission::Relay => relay(f, req).await,
        Admission::Refuse(why) => text_response(
            StatusCode::FORBIDDEN,
            format!("bglass open: refused: {why}\n"),
        ),
        Admission::StartSession { location } => {
            let mut r = text_response(
                StatusCode::SEE_OTHER,
                format!("bglass open: session started; continue to {location}\n"),
            );
            let cookie = format!(
                "{}={}; Path=/; HttpOnly; SameSite=Strict",
                f.gate.cookie, f.gate.secret
            );
            let h = r.headers_mut();
            if let (Ok(cookie), Ok(location)) = (
                HeaderValue::from_str(&cookie),
                HeaderValue::from_str(&location),
            ) {
                h.insert(header::SET_COOKIE, cookie);
                h.insert(header::LOCATION, location);
            }
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            r
        }
    }
}

async fn relay(f: Arc<Forward>, req: hyper::Request<Incoming>) -> hyper::Response<Body> {
    let mut path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // kubectl's requests: the tool's path is what follows the kubeconfig's secret prefix.
    if let Some(tail) = f.gate.kube_path(req.uri().path()) {
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let tail = if tail.is_empty() { "/" } else { tail };
        path = format!("{tail}{query}");
    }
    let url = format!("{}{path}", f.base);
    let mut request = f
        .http
        .request(req.method().clone(), &url)
        .header(GRANT_HEADER, &f.token);
    for (name, value) in req.headers() {
        // The forwarder's cookie is not the tool's; a Referer may still carry the secret.
        let referer_with_secret =
            name == header::REFERER && value.to_str().map_or(true, |v| v.contains(SESSION_PARAM));
        if name != header::HOST
            && name != header::COOKIE
            && !is_hop_by_hop(name.as_str())
            && !referer_with_secret
        {
            request = request.header(name, value);
        }
    }
    if let Some(cookie) = f.gate.strip_cookie(req.headers()) {
        request = request.header(header::COOKIE, cookie);
    }
    let stream = http_body_util::BodyStream::new(req.into_body())
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
    request = request.body(reqwest::Body::wrap_stream(stream));
    match request.send().await {
        Ok(response) => {
            let mut builder = hyper::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                if !is_hop_by_hop(name.as_str()) {
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
        Err(e) => text_response(
            StatusCode::BAD_GATEWAY,
            format!(
                "bglass: the proxy did not answer: {}\n",
                bglass_client::failure::transport_cause(&e)
            ),
        ),
    }
}

fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Writes a kubeconfig (mode 0600) whose one cluster is the forwarder at `local`, under the
/// path prefix `/kube-SECRET` that admits kubectl's requests.
fn write_kubeconfig(
    path: &Path,
    service: &ServiceName,
    local: SocketAddr,
    secret: &str,
) -> CliResult {
    let name = format!("bglass-{service}");
    let text = format!(
        "# Written by `bglass open {service} --kubeconfig`: the cluster is bglass's local\n\
         # forwarder, which adds your grant; the secret in its URL is the forwarder's own and\n\
         # works only while that command runs. Keep this file to yourself.\n\
         apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {name}\n  \
         cluster:\n    \
         server: http://{local}/kube-{secret}\n\
         users:\n\
         - name: {name}\n  \
         user: {{}}\n\
         contexts:\n\
         - name: {name}\n  \
         context:\n    \
         cluster: {name}\n    \
         user: {name}\n\
         current-context: {name}\n"
    );
    crate::store::write_private(path, text.as_bytes())
}

/// Runs `bglass open`.
pub fn run(config: Option<&Path>, args: OpenArgs) -> CliResult {
    // The input first: nothing is unlocked for a bad name or address.
    check_args(&args)?;
    run_in(Session::open(config)?, args)
}

fn check_args(args: &OpenArgs) -> CliResult<ServiceName> {
    let service: ServiceName = super::parse_arg(Some("service"), &args.service)?;
    if !args.local.ip().is_loopback() {
        return Err(
            CliError::user("--local must be a loopback address (127.0.0.1:PORT)")
                .with_hint("the forwarder adds your grant to every request: never expose it"),
        );
    }
    Ok(service)
}

/// `bglass open` on a session already open (`bglass tui` hands its terminal over to it).
pub fn run_in(session: Session, args: OpenArgs) -> CliResult {
    let service = check_args(&args)?;
    let mut session = session;
    super::check_held(&mut session, &service)?;
    let now = timestamp::now_ms() / 1000;
    let (grant, conn) = session
        .held_grants(&service)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::internal("no grant"))?;
    if let Some(warning) = session.identity.agent_ends_before(grant.exp) {
        eprintln!("bglass: warning: {warning}");
    }
    let http = conn.http.clone();
    let base = format!("{}/s/{service}", conn.entry.url.trim_end_matches('/'));
    let token = grant.token.clone();
    let no_browser = args.no_browser || args.kubeconfig.is_some();
    let kubeconfig = args.kubeconfig.clone();
    block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.local)
            .await
            .map_err(|e| CliError::user(format!("cannot listen on {}: {e}", args.local)))?;
        let local: SocketAddr = listener.local_addr().map_err(CliError::internal)?;
        let mut gate = Gate::new(local)?;
        if let Some(path) = &kubeconfig {
            let secret = random_hex(32)?;
            write_kubeconfig(path, &service, local, &secret)?;
            gate.kube = Some(secret);
        }
        let forward = Arc::new(Forward {
            http,
            base,
            token,
            gate,
        });
        let url = forward.gate.url(local);
        crate::outln!(
            "{service} is at {url} until {} (grant {})",
            timestamp::format_secs(grant.exp),
            grant.id
        )?;
        if let Some(path) = &kubeconfig {
            crate::outln!(
                "kubeconfig for {service}: {} (e.g. kubectl --kubeconfig {} get namespaces)",
                path.display(),
                path.display()
            )?;
            eprintln!(
                "The kubeconfig works while this runs (the secret in its URL is this forwarder's, not the cluster's credential). Press Ctrl-C to stop."
            );
        } else {
            eprintln!(
                "Open that URL in your browser (it carries this session's secret: keep it to yourself). Press Ctrl-C to stop."
            );
        }
        if !no_browser && let Some(launch) = forward.gate.launch_url(local) {
            // The browser's command line is visible to other local users: give it the
            // one-time secret, used up by the browser's first request.
            let _ = std::process::Command::new("xdg-open")
                .arg(&launch)
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
                        async move { Ok::<_, std::convert::Infallible>(serve(forward, req).await) }
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

#[cfg(test)]
mod tests;
