//! Waiting for an event in an end-to-end test: poll a condition until a deadline, then fail
//! saying what was awaited. Never a fixed sleep: a sleep long enough for a loaded machine
//! wastes time on every other run, and one short enough for a quiet machine is flaky on a
//! loaded one.

use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// What a condition returns: `true` or `Some(value)` when it holds.
pub trait Ready {
    /// What [`eventually`] returns when the condition holds.
    type Value;
    /// The value, when the condition holds.
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `condition` until it holds and returns its value; fails the test, naming `what`,
/// when it does not hold within `deadline`.
#[track_caller]
pub fn eventually<R: Ready>(
    deadline: Duration,
    what: &str,
    condition: impl FnMut() -> R,
) -> R::Value {
    within(deadline, condition)
        .unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}

/// Polls `condition` until it holds and returns its value, or `None` when it does not hold
/// within `deadline` (for a failure message that shows what was seen last).
pub fn within<R: Ready>(deadline: Duration, mut condition: impl FnMut() -> R) -> Option<R::Value> {
    let started = Instant::now();
    loop {
        if let Some(value) = condition().ready() {
            return Some(value);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] inside an async runtime (it yields to other tasks while it waits).
pub async fn eventually_async<R: Ready, F: Future<Output = R>>(
    deadline: Duration,
    what: &str,
    mut condition: impl FnMut() -> F,
) -> R::Value {
    let started = Instant::now();
    loop {
        if let Some(value) = condition().await.ready() {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut polls = 0;
        let value = eventually(Duration::from_secs(5), "the third poll", || {
            polls += 1;
            (polls == 3).then_some(polls)
        });
        assert_eq!(value, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for something that never happens")]
    fn fails_naming_what_it_waited_for() {
        eventually(
            Duration::from_millis(50),
            "something that never happens",
            || false,
        );
    }
}
