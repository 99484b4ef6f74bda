//! Loading a scenario with everything it refers to — its catalog (the scenario's, or the
//! one built into bglass) and its declared production dependencies — and checking them
//! together, for every drill command.

use std::path::Path;

use bglass_client::error::{CliError, CliResult};
use bglass_core::catalog::Catalog;
use bglass_core::scenario::{Production, Scenario};

/// The catalog built into bglass (the repository's `services.toml`), for scenarios that
/// name none.
pub const SHIPPED_CATALOG: &str = include_str!("../../services.toml");

/// A scenario with everything it refers to, loaded and checked.
#[derive(Debug)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// The catalog's text (the scenario's, or the one built in).
    pub catalog_text: String,
    /// The catalog.
    pub catalog: Catalog,
    /// Where the catalog came from, for people.
    pub catalog_name: String,
    /// The declared production dependencies.
    pub production: Option<Production>,
}

/// Loads a scenario, its catalog and its production dependencies, and checks them together.
pub fn load(path: &Path) -> CliResult<Loaded> {
    let hint = "fix the scenario at the position shown; nothing was run";
    let scenario = Scenario::load(path).map_err(|e| CliError::user(e).with_hint(hint))?;
    let (catalog_text, catalog_name) = match &scenario.catalog {
        Some(p) => {
            // Validated by Catalog::load first: size limits, encoding, schema.
            Catalog::load(p)
                .map_err(|e| CliError::user(e).with_hint("fix the catalog; nothing was run"))?;
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::user(format!("{}: {e}", p.display())))?;
            (text, p.display().to_string())
        }
        None => (
            SHIPPED_CATALOG.to_owned(),
            "the catalog built into bglass".to_owned(),
        ),
    };
    let catalog = Catalog::from_bytes(Path::new(&catalog_name), catalog_text.as_bytes().to_vec())
        .map_err(|e| CliError::user(e).with_hint("fix the catalog; nothing was run"))?;
    let production = scenario
        .production
        .as_ref()
        .map(|p| Production::load(p).map_err(|e| CliError::user(e).with_hint(hint)))
        .transpose()?;
    scenario
        .check(&catalog, &catalog_name, production.as_ref())
        .map_err(|e| CliError::user(e).with_hint(hint))?;
    Ok(Loaded {
        scenario,
        catalog_text,
        catalog,
        catalog_name,
        production,
    })
}
