//! The answer to one append, from the writer thread to whoever appended: a thread blocks on
//! it ([`Submitted::wait`]), an async task awaits it (`Submitted` is a future). Awaiting parks
//! no thread: the writer wakes the task itself, so a proxy serving thousands of requests a
//! second does not hand every one of them to a blocking thread and back.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::{Appended, AuditAppendError};

type Answer = Result<Appended, AuditAppendError>;

#[derive(Debug, Default)]
struct Slot {
    inner: Mutex<Inner>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct Inner {
    answer: Option<Answer>,
    waker: Option<Waker>,
    /// A thread blocks in [`Submitted::wait`]: only then is the condition variable
    /// notified (a notification is a system call; most appends are awaited, not waited).
    blocked: bool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new pair: the writer answers through the [`Reply`], the appender waits on the
/// [`Submitted`].
pub(crate) fn channel() -> (Reply, Submitted) {
    let slot = Arc::new(Slot::default());
    (Reply(Some(Arc::clone(&slot))), Submitted(slot))
}

/// The writer's side. Dropped without an answer (the writer stopped), it answers
/// [`AuditAppendError::Closed`].
#[derive(Debug)]
pub(crate) struct Reply(Option<Arc<Slot>>);

impl Reply {
    /// Answers the appender.
    pub(crate) fn send(mut self, answer: Answer) {
        if let Some(slot) = self.0.take() {
            deliver(&slot, answer);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            deliver(&slot, Err(AuditAppendError::Closed));
        }
    }
}

fn deliver(slot: &Slot, answer: Answer) {
    let (waker, blocked) = {
        let mut inner = slot.lock();
        inner.answer = Some(answer);
        (inner.waker.take(), inner.blocked)
    };
    if blocked {
        slot.ready.notify_all();
    }
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// An entry queued for appending: wait for it, or await it.
#[derive(Debug)]
pub struct Submitted(Arc<Slot>);

impl Submitted {
    /// Blocks until the entry is on disk (or the append failed).
    pub fn wait(self) -> Answer {
        let mut inner = self.0.lock();
        loop {
            if let Some(answer) = inner.answer.take() {
                return answer;
            }
            inner.blocked = true;
            inner = self
                .0
                .ready
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Future for Submitted {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let mut inner = self.0.lock();
        match inner.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                if !inner
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    inner.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended(index: u64) -> Answer {
        Ok(Appended {
            index,
            leaf: crate::audit::tree::EMPTY_HASH,
        })
    }

    #[test]
    fn a_thread_waits_for_the_answer() {
        let (reply, submitted) = channel();
        let writer = std::thread::spawn(move || reply.send(appended(7)));
        assert_eq!(submitted.wait().map(|a| a.index).ok(), Some(7));
        writer.join().unwrap();
    }

    #[test]
    fn a_dropped_reply_answers_closed() {
        let (reply, submitted) = channel();
        drop(reply);
        assert!(matches!(submitted.wait(), Err(AuditAppendError::Closed)));
    }

    /// Wakes the test's thread.
    struct Unpark(std::thread::Thread);

    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    #[test]
    fn a_task_is_pending_until_the_writer_wakes_it() {
        let (reply, mut submitted) = channel();
        let woken = Arc::new(Unpark(std::thread::current()));
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut submitted).poll(&mut cx).is_pending());
        let writer = std::thread::spawn(move || reply.send(appended(3)));
        let answer = loop {
            if let Poll::Ready(answer) = Pin::new(&mut submitted).poll(&mut cx) {
                break answer;
            }
            std::thread::park();
        };
        assert_eq!(answer.map(|a| a.index).ok(), Some(3));
        writer.join().unwrap();
    }
}
