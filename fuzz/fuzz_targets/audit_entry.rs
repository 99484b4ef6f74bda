//! Fuzz audit entry decoding: any bytes give an event or an error, never a panic; a decoded
//! event re-encodes to bytes that decode to the same event.
#![no_main]

use bglass_core::audit::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::from_bytes(data) {
        let again = event.to_bytes().ok().and_then(|b| Event::from_bytes(&b).ok());
        assert_eq!(again.as_ref(), Some(&event));
    }
});
