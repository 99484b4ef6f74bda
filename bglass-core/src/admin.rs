//! Config changes signed by k of n admins: a catalog or roster is put in force only with a
//! detached signature file (`services.toml.sig`, `responders.toml.sig`) holding valid
//! signatures from enough distinct admins of `proxy.toml` over its exact bytes.
//!
//! What an admin signs is a transition, not a file alone: the kind of file, the SHA-256 of
//! the version in force it replaces (its parent, `none` for a first deployment) and the
//! SHA-256 of the new bytes. A signed version therefore cannot be replayed later to undo
//! the changes made after it (its parent is no longer the version in force), nor used as
//! the other kind of file.
//!
//! The signature file has one line per admin, appended by each (`bglass admin sign`):
//!
//! ```text
//! bglass-config-signature v1 roster parent=<hex|none> digest=<hex> signer=<id> key=ed25519:… sig=<base64>
//! ```

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::audit::policy_files::{PolicyKind, digest};
use crate::keys::{PublicKey, SigningKey};

/// What the signature covers is prefixed with this (domain separation).
const DOMAIN: &[u8] = b"bglass-config-signature/v1\n";
/// The first word of a signature line.
const TAG: &str = "bglass-config-signature";
/// The largest signature file read.
pub const MAX_SIG_FILE_BYTES: u64 = 64 * 1024;
/// The suffix of the signature file beside the file it signs.
pub const SIG_SUFFIX: &str = ".sig";

/// An admin of `proxy.toml`: a name and an Ed25519 key (`carol=ed25519:…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminKey {
    /// Who (a name for messages and the audit log).
    pub name: String,
    /// Their key.
    pub key: PublicKey,
}

impl std::str::FromStr for AdminKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, key) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: an admin is NAME=ed25519:<key>"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "{s:?}: an admin's name is letters, digits, '-', '_' and '.'"
            ));
        }
        let key = key.parse().map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }
}

/// The change a signature approves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Catalog or roster.
    pub kind: PolicyKind,
    /// The digest of the version in force it replaces (`None`: a first deployment).
    pub parent: Option<String>,
    /// The digest of the new version.
    pub digest: String,
}

impl Transition {
    /// The change from `parent` to the file whose bytes are `bytes`.
    pub fn to_bytes(kind: PolicyKind, parent: Option<&str>, bytes: &[u8]) -> Self {
        Self {
            kind,
            parent: parent.map(str::to_owned),
            digest: digest(bytes),
        }
    }

    fn message(&self) -> Vec<u8> {
        format!(
            "file {}\nparent {}\ndigest {}\n",
            self.kind.name(),
            self.parent.as_deref().unwrap_or("none"),
            self.digest
        )
        .into_bytes()
    }

    /// One admin's signature line (ending in a newline) approving this change.
    pub fn sign(&self, signer: &str, key: &SigningKey) -> String {
        let sig = key.sign(DOMAIN, &self.message());
        format!(
            "{TAG} v1 {} parent={} digest={} signer={signer} key={} sig={}\n",
            self.kind.name(),
            self.parent.as_deref().unwrap_or("none"),
            self.digest,
            key.public_key(),
            STANDARD.encode(sig)
        )
    }

    /// The admins among `admins` whose valid signatures on this change `sig_file` holds
    /// (each counted once); and why each other line does not count.
    pub fn signers(&self, sig_file: &str, admins: &[AdminKey]) -> Signers {
        let mut out = Signers::default();
        for (n, line) in sig_file.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match self.check_line(line, admins) {
                Ok(admin) => {
                    out.valid.insert(admin);
                }
                Err(why) => out.ignored.push(format!("line {}: {why}", n + 1)),
            }
        }
        out
    }

    fn check_line(&self, line: &str, admins: &[AdminKey]) -> Result<String, String> {
        let [kind, parent, digest, signer, key, sig]: [String; 6] =
            line_fields(line, TAG, 1, &["parent", "digest", "signer", "key", "sig"])?
                .try_into()
                .map_err(|_| "a field is missing".to_owned())?;
        if kind != self.kind.name() {
            return Err(format!("signs a {kind}, not a {}", self.kind.name()));
        }
        let own_parent = self.parent.as_deref().unwrap_or("none");
        if parent != own_parent {
            return Err(format!(
                "{signer} signed a change from {} (this one replaces {})",
                short(&parent),
                short(own_parent)
            ));
        }
        if digest != self.digest {
            return Err(format!(
                "{signer} signed other bytes ({}, these are {})",
                short(&digest),
                short(&self.digest)
            ));
        }
        let key: PublicKey = key.parse().map_err(|e| format!("key: {e}"))?;
        let admin = admins
            .iter()
            .find(|a| a.key == key)
            .ok_or_else(|| format!("{signer}'s key {key} is not an admin key of this proxy"))?;
        let sig = STANDARD
            .decode(sig)
            .map_err(|_| format!("{signer}'s signature is not base64"))?;
        if !key.verify(DOMAIN, &self.message(), &sig) {
            return Err(format!("{signer}'s signature does not verify"));
        }
        Ok(admin.name.clone())
    }
}

/// What a signature file holds for one change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Signers {
    /// The admins whose signatures verify (by name, each once).
    pub valid: BTreeSet<String>,
    /// The lines that do not count, and why.
    pub ignored: Vec<String>,
}

impl Signers {
    /// Refuses fewer than `threshold` signers, saying who signed and why other lines did
    /// not count.
    pub fn require(&self, threshold: usize, kind: PolicyKind) -> Result<Vec<String>, String> {
        if self.valid.len() >= threshold {
            return Ok(self.valid.iter().cloned().collect());
        }
        let mut why = format!(
            "the {} is signed by {} of the {threshold} admins required",
            kind.name(),
            self.valid.len()
        );
        if !self.valid.is_empty() {
            why.push_str(&format!(
                " ({})",
                self.valid.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(first) = self.ignored.first() {
            why.push_str(&format!("; not counted: {first}"));
            if self.ignored.len() > 1 {
                why.push_str(&format!(" (and {} more)", self.ignored.len() - 1));
            }
        }
        Err(why)
    }
}

/// The `name=value` words of a signature line after its tag and version (`TAG v1 …`): the
/// values of `names`, in that order, each where expected; why not otherwise. `extra` words
/// between the version and the fields (a kind) are returned first.
pub(crate) fn line_fields(
    line: &str,
    tag: &str,
    extra: usize,
    names: &[&str],
) -> Result<Vec<String>, String> {
    let mut words = line.trim().split(' ');
    if words.next() != Some(tag) || words.next() != Some("v1") {
        return Err(format!("not a {tag} v1 line"));
    }
    let mut out: Vec<String> = (0..extra)
        .map(|_| words.next().unwrap_or_default().to_owned())
        .collect();
    for name in names {
        let value = words
            .next()
            .and_then(|w| w.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| format!("no {name}= where expected"))?;
        out.push(value.to_owned());
    }
    Ok(out)
}

fn short(digest: &str) -> String {
    match digest.get(..12) {
        Some(head) if digest.len() > 12 => format!("{head}…"),
        _ => digest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(name: &str, seed: u8) -> (AdminKey, SigningKey) {
        let key = SigningKey::from_seed(&[seed; 32]).unwrap();
        (
            AdminKey {
                name: name.to_owned(),
                key: key.public_key(),
            },
            key,
        )
    }

    #[test]
    fn k_distinct_admins_over_the_exact_change_are_required() {
        let (carol, carol_key) = admin("carol", 1);
        let (dave, dave_key) = admin("dave", 2);
        let (_, eve_key) = admin("eve", 3);
        let admins = [carol, dave];
        let old = b"version = 1\n";
        let new = b"version = 1\n# an approver added\n";
        let change = Transition::to_bytes(PolicyKind::Roster, Some(&digest(old)), new);
        let mut file = change.sign("carol", &carol_key);
        // The same admin twice counts once; a stranger not at all.
        file.push_str(&change.sign("carol", &carol_key));
        file.push_str(&change.sign("eve", &eve_key));
        let signers = change.signers(&file, &admins);
        assert_eq!(signers.valid.len(), 1);
        let err = signers.require(2, PolicyKind::Roster).unwrap_err();
        assert!(
            err.starts_with("the roster is signed by 1 of the 2 admins required (carol)"),
            "{err}"
        );
        assert!(err.contains("not an admin key"), "{err}");
        file.push_str(&change.sign("dave", &dave_key));
        assert_eq!(
            change
                .signers(&file, &admins)
                .require(2, PolicyKind::Roster)
                .unwrap(),
            ["carol", "dave"]
        );

        // Not for other bytes, another parent (a replayed old version), or the other kind.
        let other = Transition::to_bytes(PolicyKind::Roster, Some(&digest(old)), b"x");
        assert!(other.signers(&file, &admins).valid.is_empty());
        let replay = Transition::to_bytes(PolicyKind::Roster, Some(&digest(b"later")), new);
        let why = replay.signers(&file, &admins);
        assert!(
            why.valid.is_empty() && why.ignored[0].contains("signed a change from"),
            "{why:?}"
        );
        let catalog = Transition::to_bytes(PolicyKind::Catalog, Some(&digest(old)), new);
        assert!(catalog.signers(&file, &admins).valid.is_empty());
        // A signature altered by a byte.
        let forged = change.sign("dave", &dave_key).replacen("sig=", "sig=A", 1);
        assert!(change.signers(&forged, &admins).valid.is_empty());
    }

    #[test]
    fn admin_keys_parse_and_refuse_what_is_not_one() {
        let key = SigningKey::from_seed(&[1; 32]).unwrap().public_key();
        let a: AdminKey = format!("carol={key}").parse().unwrap();
        assert_eq!(a.name, "carol");
        assert!("carol".parse::<AdminKey>().is_err());
        assert!(format!("ca rol={key}").parse::<AdminKey>().is_err());
        assert!("carol=ed25519:nope".parse::<AdminKey>().is_err());
    }
}
