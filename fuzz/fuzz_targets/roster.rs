//! Fuzz the roster parser: any bytes must give a roster or a located error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match bglass_core::roster::Roster::from_bytes(Path::new("fuzz.toml"), data.to_vec()) {
        // A parsed roster prints entries that parse back the same.
        Ok(roster) => {
            for r in roster.responders() {
                let again = bglass_core::roster::Roster::from_bytes(
                    Path::new("again.toml"),
                    r.to_toml().into_bytes(),
                );
                assert!(again.is_ok_and(|a| a.responders() == std::slice::from_ref(r)));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
