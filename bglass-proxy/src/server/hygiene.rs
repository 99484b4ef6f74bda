//! What crosses the data plane besides the body: which request headers reach a tool, which
//! response headers reach the responder, and the per-grant cookie jar.
//!
//! The proxy speaks to the tool with the injected credential, so everything the tool sends
//! back may carry that credential's power: a session cookie minted with it would outlive the
//! grant in the responder's hands, a debugging header may echo it, and a `bglass-*` header
//! could pose as the proxy's own refusal. Equally, a responder must not be able to claim
//! another identity to the tool with forwarding or single-sign-on headers. So:
//!
//! - request: hop-by-hop headers, the client's credentials and cookies, and every identity
//!   or forwarding header are removed; the forwarding headers are set from the proxy's side;
//! - response: hop-by-hop headers, every `bglass-*` header and every header whose value holds
//!   the injected secret are removed; `Set-Cookie` goes into the grant's jar on the proxy
//!   (replayed to the tool on the grant's later requests, never given to the client, dropped
//!   when the grant ends).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bglass_core::headers::HOP_BY_HOP;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Client headers that carry credentials or claim an identity or a network path to the tool.
const CLIENT_IDENTITY_HEADERS: [&str; 16] = [
    "authorization",
    "cookie",
    "forwarded",
    "via",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "client-ip",
    "remote-user",
    "remote-addr",
    "x-user",
    "x-username",
    "x-email",
    "x-proxy-user",
    "x-authenticated-user",
    "x-authenticated-userid",
];

/// Prefixes of client headers with the same roles (`X-Forwarded-For`, `X-WEBAUTH-USER`, …).
const CLIENT_IDENTITY_PREFIXES: [&str; 10] = [
    "x-forwarded-",
    "x-real-",
    "x-webauth-",
    "x-remote-",
    "x-auth-request-",
    "x-original-",
    "x-client-",
    "x-ms-client-principal",
    "x-goog-authenticated-",
    "bglass-",
];

/// Removes the hop-by-hop headers, and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Makes a client's request headers fit to reach a tool: no hop-by-hop headers, none of the
/// client's credentials, cookies or identity claims, and forwarding headers that say what
/// the proxy saw (`peer`).
pub fn clean_request(headers: &mut HeaderMap, peer: SocketAddr) {
    strip_hop_by_hop(headers);
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let n = name.as_str();
        if CLIENT_IDENTITY_HEADERS.contains(&n)
            || CLIENT_IDENTITY_PREFIXES.iter().any(|p| n.starts_with(p))
        {
            headers.remove(&name);
        }
    }
    let ip = peer.ip().to_string();
    if let Ok(v) = HeaderValue::from_str(&ip) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let forwarded = match peer.ip() {
        std::net::IpAddr::V4(_) => format!("for={ip};proto=https"),
        std::net::IpAddr::V6(_) => format!("for=\"[{ip}]\";proto=https"),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert("forwarded", v);
    }
}

/// Makes a tool's response headers fit for the responder: hop-by-hop headers, `bglass-*`
/// headers and any header holding one of `secrets` are removed; the `Set-Cookie` headers
/// are removed and returned (for the grant's jar).
pub fn clean_response(headers: &mut HeaderMap, secrets: &[&str]) -> Vec<HeaderValue> {
    strip_hop_by_hop(headers);
    let cookies: Vec<HeaderValue> = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    headers.remove(http::header::SET_COOKIE);
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let leaks = headers.get_all(&name).iter().any(|v| {
            let bytes = v.as_bytes();
            secrets
                .iter()
                .filter(|s| !s.is_empty())
                .any(|s| contains(bytes, s.as_bytes()))
        });
        if leaks || name.as_str().starts_with("bglass-") {
            headers.remove(&name);
        }
    }
    cookies
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Most cookies a jar holds, and the longest cookie (name and value) it keeps.
const JAR_MAX_COOKIES: usize = 64;
const JAR_MAX_COOKIE_BYTES: usize = 4096;

/// The cookies a tool set for one grant, kept on the proxy and replayed to the tool.
#[derive(Debug, Default)]
pub struct CookieJar {
    cookies: BTreeMap<String, (String, Option<u64>)>,
}

impl CookieJar {
    /// Takes one `Set-Cookie` header at `now_s` (Unix seconds): stores, replaces or (when it
    /// has expired) deletes the cookie. Attributes other than the lifetime are ignored: the
    /// jar belongs to one grant on one service.
    pub fn store(&mut self, set_cookie: &HeaderValue, now_s: u64) {
        let Ok(text) = set_cookie.to_str() else {
            return;
        };
        let mut parts = text.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.len() + value.len() > JAR_MAX_COOKIE_BYTES {
            return;
        }
        let mut expires = None;
        for attr in parts {
            let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
            let key = key.trim().to_ascii_lowercase();
            if key == "max-age" {
                match val.trim().parse::<i64>() {
                    Ok(secs) if secs <= 0 => expires = Some(0),
                    Ok(secs) => expires = Some(now_s.saturating_add(secs.unsigned_abs())),
                    Err(_) => {}
                }
                break;
            }
            if key == "expires" {
                expires = http_date(val.trim()).or(expires);
            }
        }
        if expires.is_some_and(|e| e <= now_s) {
            self.cookies.remove(name);
            return;
        }
        if self.cookies.len() >= JAR_MAX_COOKIES && !self.cookies.contains_key(name) {
            return;
        }
        self.cookies
            .insert(name.to_owned(), (value.to_owned(), expires));
    }

    /// The `Cookie` header to send to the tool at `now_s`, when the jar holds any.
    pub fn header(&mut self, now_s: u64) -> Option<HeaderValue> {
        self.cookies
            .retain(|_, (_, expires)| expires.is_none_or(|e| e > now_s));
        if self.cookies.is_empty() {
            return None;
        }
        let text = self
            .cookies
            .iter()
            .map(|(name, (value, _))| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&text).ok()
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
fn http_date(text: &str) -> Option<u64> {
    let rest = text.split_once(", ").map_or(text, |(_, r)| r);
    let mut it = rest.split_whitespace();
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: u64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1970..=9999).contains(&year) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_forwarding_headers_from_the_client_never_reach_the_tool() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-forwarded-for", "10.9.9.9"),
            ("forwarded", "for=10.9.9.9"),
            ("x-real-ip", "10.9.9.9"),
            ("x-webauth-user", "admin"),
            ("remote-user", "admin"),
            ("cookie", "session=stolen"),
            ("authorization", "Bearer mine"),
            ("bglass-grant", "bg1.x.y"),
            ("accept", "text/html"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        clean_request(&mut h, "127.0.0.7:5555".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "127.0.0.7");
        assert_eq!(h["forwarded"], "for=127.0.0.7;proto=https");
        assert_eq!(h["accept"], "text/html");
        for gone in [
            "x-real-ip",
            "x-webauth-user",
            "remote-user",
            "cookie",
            "authorization",
            "bglass-grant",
        ] {
            assert!(h.get(gone).is_none(), "{gone} was forwarded");
        }
    }

    #[test]
    fn responses_lose_cookies_bglass_headers_and_echoes_of_the_secret() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("s=1; Path=/"));
        h.append("set-cookie", HeaderValue::from_static("t=2"));
        h.insert("bglass-refusal", HeaderValue::from_static("phish"));
        h.insert("x-echo", HeaderValue::from_static("Basic c2VjcmV0"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        let cookies = clean_response(&mut h, &["c2VjcmV0", "Basic c2VjcmV0"]);
        assert_eq!(cookies.len(), 2);
        assert_eq!(h.len(), 1);
        assert_eq!(h["content-type"], "text/plain");
    }

    #[test]
    fn the_jar_keeps_replaces_and_expires_cookies() {
        let mut jar = CookieJar::default();
        let now = 1_800_000_000;
        jar.store(&HeaderValue::from_static("a=1; HttpOnly"), now);
        jar.store(&HeaderValue::from_static("b=2; Max-Age=10"), now);
        assert_eq!(jar.header(now).unwrap(), "a=1; b=2");
        jar.store(&HeaderValue::from_static("a=3"), now);
        assert_eq!(jar.header(now + 11).unwrap(), "a=3");
        jar.store(
            &HeaderValue::from_static("a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
            now,
        );
        assert!(jar.header(now).is_none());
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
    }
}
