//! `bglass curl SERVICE PATH [-X METHOD] [-d DATA] [-H 'Name: value'] [-i]`: one request to
//! a tool through the proxy that issued your grant; the body goes to stdout.
//!
//! Exit codes: 0 for 2xx/3xx, 8 for 4xx, 9 for 5xx from the tool; 3 when the proxy refuses.

use std::io::Write;
use std::path::Path;

use bglass_core::api::{ApiError, GRANT_HEADER};
use bglass_core::id::ServiceName;

use super::block_on;
use crate::cli::CurlArgs;
use crate::client::Session;
use crate::error::{CliError, CliResult, ErrorKind};

/// Runs `bglass curl`.
pub fn run(config: Option<&Path>, args: CurlArgs) -> CliResult {
    let service: ServiceName = super::parse_arg(Some("service"), &args.service)?;
    if !args.path.starts_with('/') {
        return Err(CliError::user(format!(
            "path {:?} must start with /",
            args.path
        )));
    }
    let method = reqwest::Method::from_bytes(args.method.as_bytes())
        .map_err(|_| CliError::user(format!("-X {:?} is not an HTTP method", args.method)))?;
    let body = match &args.data {
        None => None,
        Some(d) => Some(match d.strip_prefix('@') {
            Some(file) => {
                std::fs::read(file).map_err(|e| CliError::user(format!("-d @{file}: {e}")))?
            }
            None => d.clone().into_bytes(),
        }),
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| CliError::user(format!("-H {h:?} must be 'Name: value'")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut session = Session::open(config)?;
    super::check_held(&mut session, &service)?;
    // The newest grant first; when its proxy does not answer, an older grant from another
    // proxy may still serve.
    let candidates: Vec<(String, String, reqwest::Client)> = session
        .held_grants(&service)?
        .into_iter()
        .map(|(g, conn)| {
            let url = format!(
                "{}/s/{service}{}",
                conn.entry.url.trim_end_matches('/'),
                args.path
            );
            (url, g.token, conn.http.clone())
        })
        .collect();
    block_on(async move {
        let mut last_error = None;
        let mut answered = None;
        for (url, token, http) in &candidates {
            let mut request = http
                .request(method.clone(), url)
                .header(GRANT_HEADER, token);
            for (name, value) in &headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            match request.send().await {
                Ok(r) => {
                    answered = Some(r);
                    break;
                }
                Err(e) => {
                    last_error = Some(format!(
                        "{url} did not answer: {}",
                        bglass_client::failure::transport_cause(&e)
                    ))
                }
            }
        }
        let Some(mut response) = answered else {
            return Err(CliError::new(ErrorKind::Unavailable, last_error.unwrap_or_default())
                .with_hint("grants are per proxy: if it is down, run `bglass access` again to get one from another"));
        };
        let status = response.status();
        if response.headers().contains_key("bglass-refusal") {
            let text = response.text().await.unwrap_or_default();
            let e: ApiError = serde_json::from_str(&text).unwrap_or(ApiError {
                error: "refused".to_owned(),
                message: text,
                hint: None,
            });
            return Err(crate::client::refusal_error(status.as_u16(), e));
        }
        if args.include {
            eprintln!("HTTP {status}");
            for (name, value) in response.headers() {
                eprintln!("{name}: {}", value.to_str().unwrap_or("<binary>"));
            }
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            CliError::new(ErrorKind::Unavailable, format!("the response was cut: {e}"))
        })? {
            if let Err(e) = out.write_all(&chunk) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Err(CliError::closed_pipe());
                }
                return Err(CliError::user(format!(
                    "cannot write to standard output: {e}"
                )));
            }
        }
        let _ = out.flush();
        if status.is_client_error() {
            return Err(CliError::new(
                ErrorKind::Upstream4xx,
                format!("{service} answered {status}"),
            ));
        }
        if status.is_server_error() {
            return Err(CliError::new(
                ErrorKind::Upstream5xx,
                format!("{service} answered {status}"),
            ));
        }
        Ok(())
    })
}
