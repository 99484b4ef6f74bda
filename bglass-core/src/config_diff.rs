//! What a new catalog or roster changes: recorded with each accepted reload (so auditors see
//! who changed the break-glass path, and how) and printed by `bglass-proxy check --diff`
//! before admins sign.

use std::fmt;

use crate::catalog::{Catalog, Service, ServiceKind};
use crate::roster::{Responder, Roster};

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// `added`, `removed` or `changed`.
    pub op: String,
    /// What: `responder erin`, `service grafana`.
    pub item: String,
    /// How, in words (for `changed`: each field, old → new).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.op.as_str() {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        write!(f, "{sign} {}", self.item)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

fn change(op: &str, item: String, detail: String) -> Change {
    Change {
        op: op.to_owned(),
        item,
        detail,
    }
}

fn roles(r: &Responder) -> String {
    let names: Vec<&str> = r.roles.iter().map(|role| role.name()).collect();
    if names.is_empty() {
        "no roles".to_owned()
    } else {
        format!("roles {}", names.join(", "))
    }
}

/// The responders added, removed, or changed (roles, key, name) from `old` to `new`.
pub fn roster_diff(old: &Roster, new: &Roster) -> Vec<Change> {
    let mut out = Vec::new();
    for r in old.responders() {
        if new.get(&r.id).is_none() {
            out.push(change("removed", format!("responder {}", r.id), roles(r)));
        }
    }
    for r in new.responders() {
        let item = format!("responder {}", r.id);
        let Some(before) = old.get(&r.id) else {
            out.push(change(
                "added",
                item,
                format!("{}, key {}", roles(r), r.key.key_id()),
            ));
            continue;
        };
        let mut what = Vec::new();
        if before.roles != r.roles {
            what.push(format!("{} → {}", roles(before), roles(r)));
        }
        if before.key != r.key {
            what.push(format!("key {} → {}", before.key.key_id(), r.key.key_id()));
        }
        if before.name != r.name {
            what.push(format!("name {:?} → {:?}", before.name, r.name));
        }
        if !what.is_empty() {
            out.push(change("changed", item, what.join("; ")));
        }
    }
    out
}

fn summary(s: &Service) -> String {
    format!(
        "{} at {}, {} approval(s){}",
        s.kind_name(),
        s.upstream,
        s.approvals,
        if s.emergency.is_some() {
            ", emergency bypass"
        } else {
            ""
        }
    )
}

fn credential(kind: &ServiceKind) -> Option<String> {
    match kind {
        ServiceKind::Http {
            inject: Some(i), ..
        } => Some(format!("secret {} in {}", i.secret, i.header)),
        ServiceKind::Http { inject: None, .. } => Some("no credential".to_owned()),
        _ => None,
    }
}

/// What changed in one service, field by field.
fn service_changes(before: &Service, s: &Service) -> Vec<String> {
    let mut what = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            what.push(format!("{name} {a} → {b}"));
        }
    };
    field(
        "kind",
        before.kind_name().to_owned(),
        s.kind_name().to_owned(),
    );
    field("upstream", before.upstream.binding(), s.upstream.binding());
    field(
        "approvals",
        before.approvals.to_string(),
        s.approvals.to_string(),
    );
    field("max_ttl", before.max_ttl.to_string(), s.max_ttl.to_string());
    field(
        "default_ttl",
        before.default_ttl.to_string(),
        s.default_ttl.to_string(),
    );
    let bypass = |s: &Service| {
        s.emergency
            .map_or_else(|| "off".to_owned(), |e| format!("on ({})", e.ttl))
    };
    field("emergency bypass", bypass(before), bypass(s));
    if let (Some(a), Some(b)) = (credential(&before.kind), credential(&s.kind)) {
        field("credential", a, b);
    }
    if what.is_empty() && before.kind != s.kind {
        what.push(format!("{} settings", s.kind_name()));
    }
    if before.description != s.description {
        what.push("description".to_owned());
    }
    what
}

/// The services added, removed, or changed (kind, upstream, credential, approvals, TTLs,
/// bypass, settings) from `old` to `new`.
pub fn catalog_diff(old: &Catalog, new: &Catalog) -> Vec<Change> {
    let mut out = Vec::new();
    for s in old.services() {
        if new.get(&s.name).is_none() {
            out.push(change("removed", format!("service {}", s.name), summary(s)));
        }
    }
    for s in new.services() {
        let item = format!("service {}", s.name);
        match old.get(&s.name) {
            None => out.push(change("added", item, summary(s))),
            Some(before) => {
                let what = service_changes(before, s);
                if !what.is_empty() {
                    out.push(change("changed", item, what.join("; ")));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn roster(text: &str) -> Roster {
        Roster::from_bytes(Path::new("r.toml"), text.as_bytes().to_vec()).unwrap()
    }

    fn key(seed: u8) -> String {
        crate::keys::SigningKey::from_seed(&[seed; 32])
            .unwrap()
            .public_key()
            .to_string()
    }

    fn entry(id: &str, seed: u8, roles: &str) -> String {
        format!(
            "[[responder]]\nid = \"{id}\"\nname = \"{id}\"\nkey = \"{}\"\nroles = [{roles}]\n\n",
            key(seed)
        )
    }

    #[test]
    fn a_roster_diff_names_who_was_added_removed_and_how_others_changed() {
        let old = roster(&format!(
            "{}{}",
            entry("alice", 1, "\"responder\""),
            entry("bob", 2, "\"approver\"")
        ));
        let new = roster(&format!(
            "{}{}",
            entry("alice", 1, "\"responder\", \"approver\""),
            entry("erin", 3, "\"approver\"")
        ));
        let lines: Vec<String> = roster_diff(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines[0], "- responder bob: roles approver");
        assert_eq!(
            lines[1],
            "~ responder alice: roles responder → roles responder, approver"
        );
        assert!(
            lines[2].starts_with("+ responder erin: roles approver, key "),
            "{lines:?}"
        );
        assert!(roster_diff(&old, &old).is_empty());
    }
}
