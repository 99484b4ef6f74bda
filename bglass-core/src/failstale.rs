//! Fail-stale configuration: keep serving the last good version when a new one
//! is rejected, and remember why it was rejected.
//!
//! A bad push of the catalog or roster must never take the break-glass path down. The proxy
//! holds each in a [`FailStale`]: an update either replaces the current value whole or is
//! refused whole, and the refusal is kept for status, metrics and the audit log.

use std::fmt::Display;
use std::sync::{Arc, PoisonError, RwLock};

/// A rejected update: when, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// When the update was rejected, Unix seconds.
    pub at: u64,
    /// The error, as a sentence (with file:line:column where the value came from a file).
    pub reason: String,
}

/// What became of an offered update.
#[derive(Debug)]
pub enum Offer<T, E> {
    /// The update was valid and is now current.
    Accepted(Arc<T>),
    /// The update was invalid; `kept` is the value still being served.
    Rejected {
        /// Why the update was refused.
        error: E,
        /// The last good value, unchanged.
        kept: Arc<T>,
    },
}

#[derive(Debug)]
struct State<T> {
    current: Arc<T>,
    generation: u64,
    last_rejection: Option<Rejection>,
}

/// Holds the last good value of a configuration that may be reloaded.
#[derive(Debug)]
pub struct FailStale<T> {
    state: RwLock<State<T>>,
}

impl<T> FailStale<T> {
    /// Starts with a value that was already validated.
    pub fn new(initial: T) -> Self {
        Self {
            state: RwLock::new(State {
                current: Arc::new(initial),
                generation: 1,
                last_rejection: None,
            }),
        }
    }

    /// The value being served.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.read().current)
    }

    /// How many values have been accepted, the initial one included.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// The most recent rejection, if any update was ever refused.
    pub fn last_rejection(&self) -> Option<Rejection> {
        self.read().last_rejection.clone()
    }

    /// Offers the result of loading a new version: a valid value replaces the current one;
    /// an error leaves it in place and is recorded as the last rejection.
    pub fn offer<E: Display>(&self, candidate: Result<T, E>, now: u64) -> Offer<T, E> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match candidate {
            Ok(value) => {
                let value = Arc::new(value);
                state.current = Arc::clone(&value);
                state.generation += 1;
                Offer::Accepted(value)
            }
            Err(error) => {
                state.last_rejection = Some(Rejection {
                    at: now,
                    reason: error.to_string(),
                });
                Offer::Rejected {
                    error,
                    kept: Arc::clone(&state.current),
                }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave `State` half-updated (each field is
        // replaced whole), so a poisoned lock is still safe to read.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_good_value() {
        let holder = FailStale::new(1u32);
        assert!(matches!(holder.offer::<String>(Ok(2), 10), Offer::Accepted(v) if *v == 2));
        match holder.offer(Err::<u32, _>("bad push"), 20) {
            Offer::Rejected { error, kept } => {
                assert_eq!(error, "bad push");
                assert_eq!(*kept, 2);
            }
            Offer::Accepted(_) => panic!("an error must not be accepted"),
        }
        assert_eq!(*holder.current(), 2);
        assert_eq!(holder.generation(), 2);
        assert_eq!(
            holder.last_rejection(),
            Some(Rejection {
                at: 20,
                reason: "bad push".to_owned()
            })
        );
    }
}
