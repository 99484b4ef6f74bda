//! Fuzz grant verification: any string gives a verified grant or a specific error, never a
//! panic.
#![no_main]

use bglass_core::grant::GrantVerifier;
use bglass_core::id::{ProxyId, ServiceName};
use bglass_core::keys::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let (Ok(proxy), Ok(responder), Ok(issuer), Ok(service)) = (
        SigningKey::from_seed(&[1; 32]),
        SigningKey::from_seed(&[3; 32]),
        ProxyId::new("proxy-a"),
        ServiceName::new("grafana"),
    ) else {
        return;
    };
    let verifier = GrantVerifier::new(issuer, proxy.public_key());
    if let Err(e) = verifier.verify(token, 1_767_225_600, &service, &responder.public_key()) {
        let _ = e.to_string();
    }
});
