//! Rotation of a proxy's signing key: a transition statement, signed by the old key and by
//! the new one, recorded in the log itself (a `signing_key_rotated` entry).
//!
//! The old key's signature says "my successor is this key"; the new key's says "I took over
//! from that key, at this entry of this log". The statement names the log's origin and the
//! entry's index, so it cannot be replayed into another log or at another place in this one.
//!
//! The key in force for a checkpoint of size `s` is the one after every transition among
//! entries `0..s`: the checkpoint that first covers a transition is signed by the new key
//! (the rotation signs it with the old key too, so a verifier or witness that only knows the
//! old key still accepts that one checkpoint). A verifier that knows any key of the chain
//! (given out of band) checks the whole chain, each link being signed by both its ends; a
//! CLI that saw the old key learns the new one only through such links, never by trust on
//! first use.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::keys::{PublicKey, SigningKey};

/// What both signatures cover is prefixed with this (domain separation).
const DOMAIN: &[u8] = b"bglass-key-transition/v1\n";

/// The event type name of a transition entry.
pub const EVENT_TYPE: &str = "signing_key_rotated";

/// One rotation of a log's signing key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTransition {
    /// The index of the log entry that records it.
    pub index: u64,
    /// The key that signed the log's checkpoints before.
    pub old: PublicKey,
    /// The key that signs them from this entry on.
    pub new: PublicKey,
    /// The old key's signature over the statement (base64).
    pub sig_old: String,
    /// The new key's signature over the statement (base64).
    pub sig_new: String,
}

/// Why a transition does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// A signature does not verify.
    #[error("the rotation at entry {index} is not signed by its {which} key {key}")]
    BadSignature {
        /// The entry.
        index: u64,
        /// `old` or `new`.
        which: &'static str,
        /// That key.
        key: PublicKey,
    },
    /// The entry says another index than where it is.
    #[error("the rotation statement names entry {claimed} but is entry {index}")]
    WrongIndex {
        /// Where it is.
        index: u64,
        /// What it says.
        claimed: u64,
    },
    /// It does not start from the key in force.
    #[error(
        "the rotation at entry {index} starts from key {old}, but the key in force is {current}"
    )]
    Broken {
        /// The entry.
        index: u64,
        /// What it names as the old key.
        old: PublicKey,
        /// The key in force there.
        current: PublicKey,
    },
    /// No chain of transitions leads from a known key to the one shown.
    #[error("no signed rotation leads from key {from} to key {to}")]
    NoPath {
        /// The key known.
        from: PublicKey,
        /// The key shown.
        to: PublicKey,
    },
}

impl KeyTransition {
    fn message(origin: &str, index: u64, old: &PublicKey, new: &PublicKey) -> Vec<u8> {
        format!("origin {origin}\nindex {index}\nold {old}\nnew {new}\n").into_bytes()
    }

    /// The statement for a rotation from `old` to `new` recorded at entry `index` of the
    /// log `origin`, signed by both.
    pub fn sign(origin: &str, index: u64, old: &SigningKey, new: &SigningKey) -> Self {
        let (old_pub, new_pub) = (old.public_key(), new.public_key());
        let message = Self::message(origin, index, &old_pub, &new_pub);
        Self {
            index,
            old: old_pub,
            new: new_pub,
            sig_old: STANDARD.encode(old.sign(DOMAIN, &message)),
            sig_new: STANDARD.encode(new.sign(DOMAIN, &message)),
        }
    }

    /// Checks both signatures for the log `origin`.
    pub fn verify(&self, origin: &str) -> Result<(), TransitionError> {
        let message = Self::message(origin, self.index, &self.old, &self.new);
        crate::keys::check_both(
            DOMAIN,
            &message,
            (&self.old, &self.sig_old),
            (&self.new, &self.sig_new),
        )
        .map_err(|which| TransitionError::BadSignature {
            index: self.index,
            which,
            key: if which == "old" { self.old } else { self.new },
        })
    }
}

/// The keys of one log over its life: where it started and each verified transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChain {
    origin: String,
    initial: PublicKey,
    steps: Vec<KeyTransition>,
}

impl KeyChain {
    /// A chain that starts at `initial`.
    pub fn new(origin: &str, initial: PublicKey) -> Self {
        Self {
            origin: origin.to_owned(),
            initial,
            steps: Vec::new(),
        }
    }

    /// Adds the transition found at entry `index`: it must name that index, start from the
    /// key in force and be signed by both keys.
    pub fn push(&mut self, index: u64, transition: KeyTransition) -> Result<(), TransitionError> {
        if transition.index != index {
            return Err(TransitionError::WrongIndex {
                index,
                claimed: transition.index,
            });
        }
        let current = self.current();
        if transition.old != current {
            return Err(TransitionError::Broken {
                index,
                old: transition.old,
                current,
            });
        }
        transition.verify(&self.origin)?;
        self.steps.push(transition);
        Ok(())
    }

    /// The key in force after every transition.
    pub fn current(&self) -> PublicKey {
        self.steps.last().map_or(self.initial, |t| t.new)
    }

    /// The key that signs a checkpoint of `size` entries: the one in force after the
    /// transitions among its entries.
    pub fn key_for(&self, size: u64) -> PublicKey {
        self.steps
            .iter()
            .take_while(|t| t.index < size)
            .last()
            .map_or(self.initial, |t| t.new)
    }

    /// Whether `key` signed this log at some point.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.initial == *key || self.steps.iter().any(|t| t.new == *key)
    }

    /// The transitions, in log order.
    pub fn steps(&self) -> &[KeyTransition] {
        &self.steps
    }
}

/// The transitions, among those a proxy shows, that lead from a key this machine knows to
/// the key the proxy presents now, each checked; an error when they do not.
pub fn follow<'a>(
    origin: &str,
    from: PublicKey,
    to: PublicKey,
    transitions: &'a [KeyTransition],
) -> Result<Vec<&'a KeyTransition>, TransitionError> {
    let mut path = Vec::new();
    let mut current = from;
    for t in transitions {
        if current == to {
            break;
        }
        if t.old == current {
            t.verify(origin)?;
            current = t.new;
            path.push(t);
        }
    }
    if current == to {
        Ok(path)
    } else {
        Err(TransitionError::NoPath { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32]).unwrap()
    }

    #[test]
    fn a_chain_follows_signed_transitions_and_refuses_the_rest() {
        let (a, b, c) = (key(1), key(2), key(3));
        let origin = "bglass/proxy-a";
        let ab = KeyTransition::sign(origin, 5, &a, &b);
        let bc = KeyTransition::sign(origin, 9, &b, &c);
        let mut chain = KeyChain::new(origin, a.public_key());
        chain.push(5, ab.clone()).unwrap();
        chain.push(9, bc.clone()).unwrap();
        assert_eq!(chain.current(), c.public_key());
        assert_eq!(chain.key_for(5), a.public_key());
        assert_eq!(chain.key_for(6), b.public_key());
        assert_eq!(chain.key_for(9), b.public_key());
        assert_eq!(chain.key_for(10), c.public_key());
        assert!(chain.contains(&b.public_key()) && !chain.contains(&key(4).public_key()));

        // Elsewhere in the log, in another log, or skipping a link: refused.
        let mut other = KeyChain::new(origin, a.public_key());
        assert!(matches!(
            other.push(6, ab.clone()),
            Err(TransitionError::WrongIndex { .. })
        ));
        assert!(matches!(
            other.push(9, bc.clone()),
            Err(TransitionError::Broken { .. })
        ));
        let mut foreign = KeyChain::new("bglass/proxy-b", a.public_key());
        assert!(matches!(
            foreign.push(5, ab.clone()),
            Err(TransitionError::BadSignature { which: "old", .. })
        ));
        // A statement the new key did not sign (someone holding only the old key names a
        // key whose owner never agreed): refused.
        let mut forged = KeyTransition::sign(origin, 5, &a, &b);
        forged.sig_new = KeyTransition::sign(origin, 5, &a, &c).sig_new;
        assert!(matches!(
            forged.verify(origin),
            Err(TransitionError::BadSignature { which: "new", .. })
        ));

        let all = [ab, bc];
        assert_eq!(
            follow(origin, a.public_key(), c.public_key(), &all)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            follow(origin, b.public_key(), c.public_key(), &all)
                .unwrap()
                .len(),
            1
        );
        assert!(
            follow(origin, c.public_key(), c.public_key(), &all)
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            follow(origin, key(4).public_key(), c.public_key(), &all),
            Err(TransitionError::NoPath { .. })
        ));
    }
}
