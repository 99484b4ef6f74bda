//! Fuzz checkpoint and receipt checking: any bytes give a verified checkpoint or a specific
//! error, never a panic.
#![no_main]

use bglass_core::audit::checkpoint;
use bglass_core::audit::receipt::Receipt;
use bglass_core::keys::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = SigningKey::from_seed(&[42; 32]) else {
        return;
    };
    let _ = checkpoint::verify(data, "bglass/proxy-a", &key.public_key());
    let _ = checkpoint::peek(data);
    if let Ok(receipt) = serde_json::from_slice::<Receipt>(data) {
        let _ = receipt.verify("bglass/proxy-a", &key.public_key(), Some(b"entry"));
    }
});
