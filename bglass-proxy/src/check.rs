//! `bglass-proxy check`: validate a catalog and a roster the way the proxy loads them, and
//! (`--diff OLD NEW`) say what a new version changes, before admins sign it.

use std::fmt;
use std::path::Path;

use bglass_core::catalog::{Catalog, CatalogError};
use bglass_core::roster::{Role, Roster, RosterError};

/// What a successful check found.
#[derive(Debug)]
pub struct CheckReport {
    /// The validated catalog.
    pub catalog: Catalog,
    /// The validated roster.
    pub roster: Roster,
    /// Problems that do not stop the proxy but that the operator should fix.
    pub warnings: Vec<String>,
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The catalog is invalid.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The roster is invalid.
    #[error(transparent)]
    Roster(#[from] RosterError),
}

/// Validates both files; also cross-checks that approvals can actually be given.
pub fn check(services: &Path, roster: &Path) -> Result<CheckReport, CheckError> {
    let catalog = Catalog::load(services)?;
    let roster = Roster::load(roster)?;
    let mut warnings = Vec::new();
    let approvers = roster.count_with(Role::Approver);
    for service in catalog.services() {
        // The requester cannot approve their own request, so a service needing n approvals
        // needs n approvers besides any one requester.
        if usize::from(service.approvals) > approvers {
            let outcome = if service.emergency.is_some() {
                "requests for it can only be granted under its emergency bypass (--emergency)"
            } else {
                "requests for it can never be granted (it has no emergency bypass)"
            };
            warnings.push(format!(
                "service {} needs {} approval(s) but the roster has {} approver(s): {outcome}",
                service.name, service.approvals, approvers
            ));
        }
    }
    if roster.count_with(Role::Responder) == 0 {
        warnings.push("no responder in the roster has the responder role".to_owned());
    }
    Ok(CheckReport {
        catalog,
        roster,
        warnings,
    })
}

/// What `new` changes from `old`: two catalogs, or two rosters (told apart by what `new`
/// parses as). Both must be valid.
pub fn diff(old: &Path, new: &Path) -> Result<Vec<bglass_core::config_diff::Change>, CheckError> {
    match Catalog::load(new) {
        Ok(new_catalog) => Ok(bglass_core::config_diff::catalog_diff(
            &Catalog::load(old)?,
            &new_catalog,
        )),
        Err(catalog_error) => match Roster::load(new) {
            Ok(new_roster) => Ok(bglass_core::config_diff::roster_diff(
                &Roster::load(old)?,
                &new_roster,
            )),
            // Neither: report it as what its name says it is meant to be.
            Err(roster_error) => {
                let name = new.file_name().map(|n| n.to_string_lossy().into_owned());
                if name.is_some_and(|n| n.contains("respond") || n.contains("roster")) {
                    Err(roster_error.into())
                } else {
                    Err(catalog_error.into())
                }
            }
        },
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "catalog: valid, {} services, sha256:{}",
            self.catalog.services().len(),
            &self.catalog.digest()[..16]
        )?;
        let counts: Vec<String> = Role::ALL
            .iter()
            .map(|r| format!("{} {}", self.roster.count_with(*r), r))
            .collect();
        writeln!(
            f,
            "roster:  valid, {} responders ({})",
            self.roster.responders().len(),
            counts.join(", ")
        )?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
