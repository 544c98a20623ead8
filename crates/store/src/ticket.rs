//! [`Ticket`]: the durability promise of one commit. It is shared: the connection owed a RECEIPT
//! and the writer holding back client-ack deliveries wait on the same commit, so a commit needs no
//! second, empty "barrier" commit to wake anyone. [`Completer`] is the store's end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::StoreError;

type Outcome = Result<(), StoreError>;

/// Resolves when a commit is durable (or failed). Clones resolve together; one that needs no
/// waiting is born ready.
#[derive(Clone)]
#[must_use = "a ticket is the durability of a commit: await it, or drop it to not wait"]
pub struct Ticket(Inner);

#[derive(Clone)]
enum Inner {
    Ready(Outcome),
    Pending(Arc<Shared>),
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    outcome: Option<Outcome>,
    wakers: Vec<Waker>,
}

/// Completes the tickets of one commit. Dropped without completing, it completes them with
/// [`StoreError::Closed`], so nobody waits for a commit the store let go of.
pub struct Completer(Option<Arc<Shared>>);

impl Ticket {
    pub fn ready(result: Outcome) -> Ticket {
        Ticket(Inner::Ready(result))
    }

    /// A ticket and the completer its store resolves it with.
    pub fn pending() -> (Ticket, Completer) {
        let shared = Arc::new(Shared::default());
        (
            Ticket(Inner::Pending(shared.clone())),
            Completer(Some(shared)),
        )
    }

    /// The outcome, if the commit has completed.
    pub fn outcome(&self) -> Option<Outcome> {
        match &self.0 {
            Inner::Ready(r) => Some(r.clone()),
            Inner::Pending(s) => s.state.lock().outcome.clone(),
        }
    }

    /// True when both are tickets of the same commit (or both were born ready).
    pub fn same_commit(&self, other: &Ticket) -> bool {
        match (&self.0, &other.0) {
            (Inner::Pending(a), Inner::Pending(b)) => Arc::ptr_eq(a, b),
            (Inner::Ready(_), Inner::Ready(_)) => true,
            _ => false,
        }
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.outcome() {
            None => f.write_str("Ticket(pending)"),
            Some(r) => write!(f, "Ticket({r:?})"),
        }
    }
}

impl Future for Ticket {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let shared = match &self.0 {
            Inner::Ready(r) => return Poll::Ready(r.clone()),
            Inner::Pending(s) => s,
        };
        let mut st = shared.state.lock();
        if let Some(r) = &st.outcome {
            return Poll::Ready(r.clone());
        }
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Completer {
    /// Resolves every ticket of this commit with `result`.
    pub fn complete(mut self, result: Outcome) {
        if let Some(shared) = self.0.take() {
            finish(&shared, result);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            finish(&shared, Err(StoreError::Closed));
        }
    }
}

fn finish(shared: &Shared, result: Outcome) {
    let wakers = {
        let mut st = shared.state.lock();
        st.outcome = Some(result);
        std::mem::take(&mut st.wakers)
    };
    for w in wakers {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn clones_resolve_together_and_a_dropped_completer_closes() {
        let (ticket, done) = Ticket::pending();
        let other = ticket.clone();
        assert!(ticket.same_commit(&other));
        let mut waiting = Box::pin(other);
        assert!((&mut waiting).now_or_never().is_none());
        done.complete(Ok(()));
        assert!(matches!(waiting.now_or_never(), Some(Ok(()))));
        assert!(matches!(ticket.now_or_never(), Some(Ok(()))));
        let (ticket, done) = Ticket::pending();
        drop(done);
        assert!(matches!(ticket.outcome(), Some(Err(StoreError::Closed))));
    }

    #[tokio::test]
    async fn a_waiting_task_is_woken() {
        let (ticket, done) = Ticket::pending();
        let waiter = tokio::spawn(ticket.clone());
        tokio::task::yield_now().await;
        done.complete(Err(StoreError::Corrupt("x".into())));
        assert!(matches!(waiter.await.unwrap(), Err(StoreError::Corrupt(_))));
    }
}
