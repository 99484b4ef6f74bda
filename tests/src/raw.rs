//! A raw client for attack tests: the same mutual TLS as `bglass`, but with hand-made
//! envelopes and headers (tampered, replayed, skewed, foreign grants).

use std::path::Path;
use std::time::Duration;

use bglass_core::SecretString;
use bglass_core::catalog::CertPin;
use bglass_core::envelope::{Action, ENVELOPE_VERSION, Nonce, RequestPayload, seal};
use bglass_core::id::ProxyId;
use bglass_core::keys::{ResponderIdentity, SigningKey};

use crate::world::PASSPHRASE;

/// A client holding a responder's key.
#[derive(Debug)]
pub struct Raw {
    /// The responder's identity.
    pub identity: ResponderIdentity,
    client: reqwest::Client,
    base: String,
}

/// An answer: status, the refusal code if any, and the body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status (0 when the connection failed).
    pub status: u16,
    /// The `error` code of a refusal.
    pub code: String,
    /// The body.
    pub body: String,
    /// The response headers (names in lower case).
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    /// A client for `url` with the responder key stored beside `config`.
    pub fn new(config: &Path, url: &str, pin: &str) -> Self {
        let key_path = config.parent().unwrap().join("identity.age");
        let identity =
            ResponderIdentity::open_file(&key_path, &SecretString::from(PASSPHRASE.to_owned()))
                .unwrap();
        Self::with_key(identity, url, pin)
    }

    /// A client with a key of its own (e.g. one not in any roster).
    pub fn with_key(identity: ResponderIdentity, url: &str, pin: &str) -> Self {
        Self::with_key_from(identity, url, pin, None)
    }

    /// A client with a key of its own connecting from the local address `from`.
    pub fn with_key_from(
        identity: ResponderIdentity,
        url: &str,
        pin: &str,
        from: Option<std::net::IpAddr>,
    ) -> Self {
        let pin: CertPin = pin.parse().unwrap();
        let tls = bglass_tls::client_config(pin, &identity.key, identity.id.as_str()).unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(20))
            .local_address(from)
            .build()
            .unwrap();
        Self {
            identity,
            client,
            base: url.to_owned(),
        }
    }

    /// A stranger's key.
    pub fn stranger(url: &str, pin: &str) -> Self {
        Self::stranger_from(url, pin, None)
    }

    /// A stranger's key (a new one), connecting from the local address `from`.
    pub fn stranger_from(url: &str, pin: &str, from: Option<std::net::IpAddr>) -> Self {
        let identity = ResponderIdentity {
            id: bglass_core::id::ResponderId::new("mallory").unwrap(),
            key: SigningKey::generate().unwrap(),
        };
        Self::with_key_from(identity, url, pin, from)
    }

    /// A signed envelope for `action`, made `age_secs` ago, for `audience`.
    pub fn envelope(&self, action: Action, audience: &str, age_secs: i64) -> Vec<u8> {
        let now = i64::try_from(bglass_core::timestamp::now_ms() / 1000).unwrap();
        let payload = RequestPayload {
            v: ENVELOPE_VERSION,
            responder: self.identity.id.clone(),
            key: self.identity.key.public_key(),
            aud: ProxyId::new(audience).unwrap(),
            iat: u64::try_from(now - age_secs).unwrap(),
            nonce: Nonce::random().unwrap(),
            action,
        };
        seal(&payload, &self.identity.key).unwrap()
    }

    /// Sends a request.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut req = self.client.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            );
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.body(b);
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let headers = r
                        .headers()
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    let body = r.text().await.unwrap_or_default();
                    let code = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    Answer {
                        status,
                        code,
                        body,
                        headers,
                    }
                }
                Err(e) => Answer {
                    status: 0,
                    code: String::new(),
                    body: format!("{e:?}"),
                    headers: Vec::new(),
                },
            }
        })
    }
}
