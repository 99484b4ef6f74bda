//! A responder's new key, vouched for by the old one (`bglass rekey`).
//!
//! The statement names the responder, the old key and the new key, and is signed by both:
//! the old key's signature says "my holder moves to this key", the new key's proves the
//! new key is held. It is one line, appended to the roster's signature file
//! (`responders.toml.sig`) beside the admins' signatures:
//!
//! ```text
//! bglass-rekey v1 responder=alice old=ed25519:… new=ed25519:… sig_old=<base64> sig_new=<base64>
//! ```
//!
//! With `[admins]` requiring signatures on the roster, a new roster that differs from the
//! one in force only by responders' keys, each change covered by such a statement from the
//! key in force, is accepted without the admins: a responder rotates their own key, and
//! nobody else can (it takes the old key).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::id::ResponderId;
use crate::keys::{PublicKey, SigningKey};
use crate::roster::Roster;

/// What both signatures cover is prefixed with this (domain separation).
const DOMAIN: &[u8] = b"bglass-rekey/v1\n";
/// The first word of a statement line.
pub const TAG: &str = "bglass-rekey";

/// One responder's move from one key to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rekey {
    /// Who.
    pub responder: ResponderId,
    /// The key in the roster now.
    pub old: PublicKey,
    /// The key that replaces it.
    pub new: PublicKey,
    sig_old: String,
    sig_new: String,
}

impl Rekey {
    fn message(responder: &ResponderId, old: &PublicKey, new: &PublicKey) -> Vec<u8> {
        format!("responder {responder}\nold {old}\nnew {new}\n").into_bytes()
    }

    /// The statement that `responder` moves from `old` to `new`, signed by both.
    pub fn sign(responder: &ResponderId, old: &SigningKey, new: &SigningKey) -> Self {
        let (old_pub, new_pub) = (old.public_key(), new.public_key());
        let message = Self::message(responder, &old_pub, &new_pub);
        Self {
            responder: responder.clone(),
            old: old_pub,
            new: new_pub,
            sig_old: STANDARD.encode(old.sign(DOMAIN, &message)),
            sig_new: STANDARD.encode(new.sign(DOMAIN, &message)),
        }
    }

    /// The statement as a line of the signature file (ending in a newline).
    pub fn line(&self) -> String {
        format!(
            "{TAG} v1 responder={} old={} new={} sig_old={} sig_new={}\n",
            self.responder, self.old, self.new, self.sig_old, self.sig_new
        )
    }

    /// Reads a statement line (its signatures are checked by [`Rekey::verify`]).
    pub fn parse(line: &str) -> Result<Self, String> {
        let [responder, old, new, sig_old, sig_new]: [String; 5] = crate::admin::line_fields(
            line,
            TAG,
            0,
            &["responder", "old", "new", "sig_old", "sig_new"],
        )?
        .try_into()
        .map_err(|_| "a field is missing".to_owned())?;
        Ok(Self {
            responder: ResponderId::new(&responder).map_err(|e| format!("responder: {e}"))?,
            old: old.parse().map_err(|e| format!("old: {e}"))?,
            new: new.parse().map_err(|e| format!("new: {e}"))?,
            sig_old,
            sig_new,
        })
    }

    /// Checks both signatures.
    pub fn verify(&self) -> Result<(), String> {
        let message = Self::message(&self.responder, &self.old, &self.new);
        crate::keys::check_both(
            DOMAIN,
            &message,
            (&self.old, &self.sig_old),
            (&self.new, &self.sig_new),
        )
        .map_err(|which| {
            let key = if which == "old" { self.old } else { self.new };
            format!(
                "{}'s rekey statement is not signed by its {which} key {key}",
                self.responder
            )
        })
    }
}

/// The responders whose key `new` changes from `old`, when that is all it changes and each
/// change is covered by a valid statement among the lines of `sig_file` (from the key in
/// `old` to the key in `new`); otherwise why not.
pub fn covered(old: &Roster, new: &Roster, sig_file: &str) -> Result<Vec<ResponderId>, String> {
    let statements: Vec<Result<Rekey, String>> = sig_file
        .lines()
        .filter(|l| l.trim_start().starts_with(TAG))
        .map(Rekey::parse)
        .collect();
    let mut rekeyed = Vec::new();
    if old.responders().len() != new.responders().len()
        || old.responders().iter().any(|r| new.get(&r.id).is_none())
    {
        return Err("it adds or removes responders, which only admins can sign".to_owned());
    }
    for r in new.responders() {
        let Some(before) = old.get(&r.id) else {
            return Err(format!("it adds responder {}", r.id));
        };
        if before.roles != r.roles || before.name != r.name {
            return Err(format!(
                "it changes {}'s roles or name, which only admins can sign",
                r.id
            ));
        }
        if before.key == r.key {
            continue;
        }
        let mut why = format!(
            "{}'s key changes without a rekey statement from {} to {} (`bglass rekey`)",
            r.id, before.key, r.key
        );
        let found = statements.iter().any(|s| match s {
            Ok(s) if s.responder == r.id && s.old == before.key && s.new == r.key => {
                match s.verify() {
                    Ok(()) => true,
                    Err(e) => {
                        why = e;
                        false
                    }
                }
            }
            _ => false,
        });
        if !found {
            return Err(why);
        }
        rekeyed.push(r.id.clone());
    }
    if rekeyed.is_empty() {
        return Err("it changes no responder's key".to_owned());
    }
    Ok(rekeyed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32]).unwrap()
    }

    fn roster(entries: &[(&str, &str, &PublicKey)]) -> Roster {
        let text: String = entries
            .iter()
            .map(|(id, roles, k)| {
                let roles: Vec<String> = roles.split(',').map(|r| format!("{r:?}")).collect();
                format!(
                    "[[responder]]\nid = {id:?}\nname = {id:?}\nkey = \"{k}\"\nroles = [{}]\n\n",
                    roles.join(", ")
                )
            })
            .collect();
        Roster::from_bytes(std::path::Path::new("responders.toml"), text.into_bytes()).unwrap()
    }

    #[test]
    fn only_key_changes_each_signed_by_the_old_and_new_keys_are_covered() {
        let (a_old, a_new, b, stranger) = (key(1), key(2), key(3), key(4));
        let alice = ResponderId::new("alice").unwrap();
        let old = roster(&[
            ("alice", "responder", &a_old.public_key()),
            ("bob", "approver", &b.public_key()),
        ]);
        let new = roster(&[
            ("alice", "responder", &a_new.public_key()),
            ("bob", "approver", &b.public_key()),
        ]);
        let statement = Rekey::sign(&alice, &a_old, &a_new);
        let parsed = Rekey::parse(&statement.line()).unwrap();
        assert_eq!(parsed, statement);
        assert_eq!(
            covered(&old, &new, &statement.line()).unwrap(),
            std::slice::from_ref(&alice)
        );

        // No statement, one from another key (whoever wants alice's access cannot make it),
        // or one the new key did not sign: refused.
        assert!(
            covered(&old, &new, "")
                .unwrap_err()
                .contains("without a rekey statement")
        );
        let by_stranger = Rekey::sign(&alice, &stranger, &a_new);
        assert!(covered(&old, &new, &by_stranger.line()).is_err());
        let mut forged = Rekey::sign(&alice, &a_old, &a_new).line();
        let tail = forged.rfind("sig_new=").unwrap();
        forged.replace_range(tail + 8..tail + 12, "AAAA");
        assert!(
            covered(&old, &new, &forged)
                .unwrap_err()
                .contains("new key")
        );

        // More than a key change: roles, or a responder added — admins only.
        let promoted = roster(&[
            ("alice", "responder,approver", &a_new.public_key()),
            ("bob", "approver", &b.public_key()),
        ]);
        assert!(
            covered(&old, &promoted, &statement.line())
                .unwrap_err()
                .contains("roles")
        );
        let grown = roster(&[
            ("alice", "responder", &a_new.public_key()),
            ("bob", "approver", &b.public_key()),
            ("eve", "approver", &stranger.public_key()),
        ]);
        assert!(
            covered(&old, &grown, &statement.line())
                .unwrap_err()
                .contains("adds")
        );
    }
}
