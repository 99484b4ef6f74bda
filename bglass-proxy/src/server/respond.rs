//! The bodies and responses every route shares: JSON, bytes, and the refusal response that
//! clients tell from an upstream's own answer by its header.

use bglass_core::api::ApiError;
use bglass_core::policy::Refusal;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::Body;

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A response body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A plain response with a content type (the witness protocol's text answers).
pub fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Refusals carry this header so that clients tell them from an upstream's own answers.
pub const REFUSAL_HEADER: &str = "bglass-refusal";

/// The JSON error response for a refusal.
pub fn refusal_response(r: &Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = json(
        status,
        &ApiError {
            error: r.code.to_owned(),
            message: r.message.clone(),
            hint: r.hint.clone(),
        },
    );
    if let Ok(v) = http::HeaderValue::from_str(r.code) {
        response.headers_mut().insert(REFUSAL_HEADER, v);
    }
    response
}
