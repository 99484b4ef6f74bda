//! Fuzz the drill scenario and production-dependency parsers, and the check of a scenario
//! against the shipped catalog: any bytes must give a value or a located error, never a
//! panic. The first byte chooses the parser.
#![no_main]

use std::path::Path;

use bglass_core::catalog::Catalog;
use bglass_core::scenario::{Production, Scenario};
use libfuzzer_sys::fuzz_target;

const CATALOG: &str = include_str!("../../services.toml");

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        match Scenario::from_bytes(Path::new("fuzz.toml"), rest.to_vec()) {
            Ok(scenario) => {
                let Ok(catalog) =
                    Catalog::from_bytes(Path::new("services.toml"), CATALOG.as_bytes().to_vec())
                else {
                    return;
                };
                if let Err(e) = scenario.check(&catalog, "services.toml", None) {
                    let _ = e.to_string();
                }
                let _ = scenario.services(&catalog);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    } else if let Err(e) = Production::from_bytes(Path::new("fuzz.toml"), rest.to_vec()) {
        let _ = e.to_string();
    }
});
