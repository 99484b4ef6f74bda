//! Fuzz envelope decoding and verification: never a panic, and nothing but a correctly
//! signed envelope verifies.
#![no_main]

use bglass_core::envelope::DecodedEnvelope;
use bglass_core::id::ProxyId;
use bglass_core::keys::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = DecodedEnvelope::decode(data) else {
        return;
    };
    let (Ok(key), Ok(audience)) = (SigningKey::from_seed(&[3; 32]), ProxyId::new("proxy-a")) else {
        return;
    };
    let public = key.public_key();
    // The fuzzer cannot forge an Ed25519 signature: verification must fail unless the input
    // came from the seed corpus, which is signed by this key.
    let _ = decoded.verify(Some(&public), Some(&public), &audience, 1_767_225_600);
});
