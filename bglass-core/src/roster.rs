//! The roster (`responders.toml`): who may use a proxy, with which key, in which roles.
//!
//! Parsed as strictly as the catalog: size and count limits before parsing, unknown fields
//! rejected, every error with file, line and column. Ids and keys are unique, so a key
//! identifies exactly one responder at the TLS handshake.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use toml::Spanned;

use crate::id::{NameError, ResponderId};
use crate::keys::{PublicKey, PublicKeyError};
use crate::source::{Located, Source, SourceLimits, SourceProblem};

/// The roster schema version this code reads (the `version` key may be left out).
pub const ROSTER_VERSION: i64 = 1;
/// Size and line limits checked before parsing.
pub const ROSTER_LIMITS: SourceLimits = SourceLimits {
    max_bytes: 4 * 1024 * 1024,
    max_line_bytes: 1024,
};
/// Most responders a roster may hold.
pub const MAX_RESPONDERS: usize = 10_000;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// What a responder may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// Ask for access to services.
    Responder,
    /// Approve, deny and revoke others' access; close emergency reviews.
    Approver,
    /// Start and stop live drills.
    DrillLead,
    /// Read the audit log through the API.
    Auditor,
    /// Prove the pathways ready (`bglass canary`): canary grants only, limited to the
    /// probes, and nothing else.
    Canary,
}

impl Role {
    /// All roles, in the order shown to users.
    pub const ALL: [Role; 5] = [
        Self::Responder,
        Self::Approver,
        Self::DrillLead,
        Self::Auditor,
        Self::Canary,
    ];

    /// The role's name in the roster.
    pub fn name(self) -> &'static str {
        match self {
            Self::Responder => "responder",
            Self::Approver => "approver",
            Self::DrillLead => "drill-lead",
            Self::Auditor => "auditor",
            Self::Canary => "canary",
        }
    }

    /// Parses a role name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One person who may use the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Responder {
    /// Unique id.
    pub id: ResponderId,
    /// Display name.
    pub name: String,
    /// Their Ed25519 public key (unique in the roster).
    pub key: PublicKey,
    /// What they may do.
    pub roles: Vec<Role>,
}

impl Responder {
    /// Whether they hold `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The entry as roster TOML, ready to paste into `responders.toml`.
    pub fn to_toml(&self) -> String {
        let roles: Vec<String> = self
            .roles
            .iter()
            .map(|r| format!("{:?}", r.name()))
            .collect();
        format!(
            "[[responder]]\nid = {:?}\nname = {}\nkey = {:?}\nroles = [{}]\n",
            self.id.as_str(),
            toml_string(&self.name),
            self.key.to_string(),
            roles.join(", ")
        )
    }
}

/// A TOML basic string (escapes quotes, backslashes and control characters).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A validated roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    responders: Vec<Responder>,
    by_id: HashMap<ResponderId, usize>,
    by_key: HashMap<PublicKey, usize>,
}

impl Roster {
    /// Reads and validates a roster file.
    pub fn load(path: &Path) -> Result<Self, RosterError> {
        let source = Source::read(path, ROSTER_LIMITS).map_err(|e| e.map(RosterProblem::Source))?;
        Self::parse(&source)
    }

    /// Reads and validates a roster file, and returns the exact bytes validated (kept beside
    /// the audit log, whose entries name them by their SHA-256).
    pub fn load_with_bytes(path: &Path) -> Result<(Self, Vec<u8>), RosterError> {
        let source = Source::read(path, ROSTER_LIMITS).map_err(|e| e.map(RosterProblem::Source))?;
        let roster = Self::parse(&source)?;
        Ok((roster, source.text().as_bytes().to_vec()))
    }

    /// Validates roster bytes already in memory; `path` names them in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, RosterError> {
        let source = Source::from_bytes(path, bytes, ROSTER_LIMITS)
            .map_err(|e| e.map(RosterProblem::Source))?;
        Self::parse(&source)
    }

    /// Builds a roster from entries made in code (the drill simulator's synthetic
    /// participants), applying the same uniqueness rules.
    pub fn from_entries(entries: Vec<Responder>) -> Result<Self, RosterProblem> {
        let mut by_id = HashMap::new();
        let mut by_key = HashMap::new();
        for (i, r) in entries.iter().enumerate() {
            if by_id.insert(r.id.clone(), i).is_some() {
                return Err(RosterProblem::DuplicateId {
                    id: r.id.to_string(),
                    first_line: 0,
                });
            }
            if let Some(first) = by_key.insert(r.key, i) {
                return Err(RosterProblem::DuplicateKey {
                    first_id: entries[first].id.to_string(),
                });
            }
        }
        Ok(Self {
            responders: entries,
            by_id,
            by_key,
        })
    }

    fn parse(source: &Source) -> Result<Self, RosterError> {
        let too_many = |count, line: Option<usize>| {
            Located::new(
                source.path(),
                line.map(|line| crate::source::Position { line, column: 1 }),
                RosterProblem::TooManyResponders {
                    count,
                    limit: MAX_RESPONDERS,
                },
            )
        };
        let headers = source.table_header_lines("responder");
        if headers.len() > MAX_RESPONDERS {
            return Err(too_many(
                headers.len(),
                headers.get(MAX_RESPONDERS).copied(),
            ));
        }
        let raw: RawRoster = source
            .parse_toml()
            .map_err(|e| e.map(RosterProblem::Source))?;
        let err = |span: std::ops::Range<usize>, problem| {
            Located::new(source.path(), source.locate(span), problem)
        };
        if let Some(v) = &raw.version
            && *v.get_ref() != ROSTER_VERSION
        {
            return Err(err(
                v.span(),
                RosterProblem::UnsupportedVersion {
                    found: *v.get_ref(),
                },
            ));
        }
        if raw.responder.len() > MAX_RESPONDERS {
            return Err(too_many(raw.responder.len(), None));
        }
        let mut responders = Vec::with_capacity(raw.responder.len());
        let mut by_id = HashMap::new();
        let mut by_key = HashMap::new();
        let mut lines: Vec<usize> = Vec::new();
        for entry in raw.responder {
            let entry = entry.into_inner();
            let id = ResponderId::new(entry.id.get_ref())
                .map_err(|e| err(entry.id.span(), RosterProblem::Id(e)))?;
            let name = entry.name.get_ref();
            let n = name.chars().count();
            if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(err(entry.name.span(), RosterProblem::Name));
            }
            let key: PublicKey = entry
                .key
                .get_ref()
                .parse()
                .map_err(|e| err(entry.key.span(), RosterProblem::Key(e)))?;
            if entry.roles.get_ref().is_empty() {
                return Err(err(entry.roles.span(), RosterProblem::NoRoles));
            }
            let mut roles = Vec::new();
            for role in entry.roles.get_ref() {
                let parsed = Role::from_name(role.get_ref()).ok_or_else(|| {
                    err(
                        role.span(),
                        RosterProblem::UnknownRole {
                            found: role.get_ref().chars().take(32).collect(),
                        },
                    )
                })?;
                if roles.contains(&parsed) {
                    return Err(err(
                        role.span(),
                        RosterProblem::DuplicateRole { role: parsed },
                    ));
                }
                roles.push(parsed);
            }
            let line = source.position(entry.id.span().start).line;
            let index = responders.len();
            if let Some(first) = by_id.insert(id.clone(), index) {
                return Err(err(
                    entry.id.span(),
                    RosterProblem::DuplicateId {
                        id: id.to_string(),
                        first_line: lines[first],
                    },
                ));
            }
            if let Some(first) = by_key.insert(key, index) {
                let first: &Responder = &responders[first];
                return Err(err(
                    entry.key.span(),
                    RosterProblem::DuplicateKey {
                        first_id: first.id.to_string(),
                    },
                ));
            }
            lines.push(line);
            responders.push(Responder {
                id,
                name: name.clone(),
                key,
                roles,
            });
        }
        Ok(Self {
            responders,
            by_id,
            by_key,
        })
    }

    /// All responders in file order.
    pub fn responders(&self) -> &[Responder] {
        &self.responders
    }

    /// The responder with this id.
    pub fn get(&self, id: &ResponderId) -> Option<&Responder> {
        self.by_id.get(id).and_then(|i| self.responders.get(*i))
    }

    /// The responder holding this key (used at the TLS handshake).
    pub fn by_key(&self, key: &PublicKey) -> Option<&Responder> {
        self.by_key.get(key).and_then(|i| self.responders.get(*i))
    }

    /// How many responders hold `role`.
    pub fn count_with(&self, role: Role) -> usize {
        self.responders.iter().filter(|r| r.has(role)).count()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoster {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    responder: Vec<Spanned<RawResponder>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponder {
    id: Spanned<String>,
    name: Spanned<String>,
    key: Spanned<String>,
    roles: Spanned<Vec<Spanned<String>>>,
}

/// A roster error: file, line, column and the rule broken.
pub type RosterError = Located<RosterProblem>;

/// The rule a roster broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RosterProblem {
    /// Unreadable, too large, not UTF-8, overlong line, or not TOML for the schema.
    #[error(transparent)]
    Source(SourceProblem),
    /// More `[[responder]]` tables than [`MAX_RESPONDERS`].
    #[error("too many responders: {count}, limit {limit}")]
    TooManyResponders {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// `version` is not [`ROSTER_VERSION`].
    #[error("unsupported roster version {found} (this bglass reads version {ROSTER_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: i64,
    },
    /// The id is invalid.
    #[error("invalid responder id: {0}")]
    Id(NameError),
    /// The display name is empty, too long or has control characters.
    #[error("name must be 1-{MAX_NAME_CHARS} characters without control characters")]
    Name,
    /// The key is not `ed25519:<base64url>`.
    #[error("invalid key: {0}")]
    Key(PublicKeyError),
    /// No roles.
    #[error("roles must list at least one of responder, approver, drill-lead, auditor")]
    NoRoles,
    /// A role name is unknown.
    #[error("unknown role {found:?}: expected responder, approver, drill-lead, auditor or canary")]
    UnknownRole {
        /// The value.
        found: String,
    },
    /// A role is listed twice.
    #[error("role {role} is listed twice")]
    DuplicateRole {
        /// The role.
        role: Role,
    },
    /// Two entries share an id.
    #[error("duplicate responder id {id:?} (first defined on line {first_line})")]
    DuplicateId {
        /// The id.
        id: String,
        /// Where it was first defined (0 when not from a file).
        first_line: usize,
    },
    /// Two entries share a key: a key must identify one person.
    #[error("this key is already the key of responder {first_id:?}; keys must be unique")]
    DuplicateKey {
        /// The responder who holds it first.
        first_id: String,
    },
}

#[cfg(test)]
mod tests;
