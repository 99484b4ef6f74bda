//! Fuzz the catalog parser: any bytes must give a catalog or a located error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = bglass_core::catalog::Catalog::from_bytes(Path::new("fuzz.toml"), data.to_vec()) {
        // Formatting the error must not panic either.
        let _ = e.to_string();
    }
});
