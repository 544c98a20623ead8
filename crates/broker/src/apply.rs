//! Carrying out [`Effects`]: dead letters are staged into their queues (with the headers that say
//! why), every store op is submitted as one commit (atomic, so a COMMIT or a NACK to the
//! dead-letter queue is all or nothing on disk), and only then do staged messages become visible.
//! Publishing can have effects of its own (delivery counts, expired messages), applied the same
//! way; dead-letter queues do not dead-letter, so this ends.
//!
//! Client-ack deliveries made while applying carry the ticket of the very commit that holds their
//! delivery counts: the commit takes that ticket's completer, so no extra commit is needed to tell
//! the connection writer when it may write them.

use std::sync::Arc;

use stampede_store::{MessageRecord, Ticket};

use crate::admin::{DEATH_REASON, ORIGINAL_DESTINATION};
use crate::effects::{Effects, PageIn};
use crate::queue::QueueStats;
use crate::Broker;

impl Broker {
    /// Applies `fx`; the ticket covers its first commit, the one a receipt waits for.
    pub(crate) fn apply(&self, mut fx: Effects) -> Ticket {
        let mut first: Option<Ticket> = None;
        loop {
            self.stage_dead_letters(&mut fx);
            let ops = std::mem::take(&mut fx.ops);
            let ticket = match (ops.is_empty(), fx.gate.take()) {
                (true, gate) => {
                    if let Some((_, done)) = gate {
                        done.complete(Ok(()));
                    }
                    Ticket::ready(Ok(()))
                }
                (false, Some((ticket, done))) => {
                    self.store.submit(ops, done);
                    ticket
                }
                (false, None) => self.store.commit(ops),
            };
            first.get_or_insert(ticket);
            for page in std::mem::take(&mut fx.page_in) {
                self.page_in(page);
            }
            let publish = std::mem::take(&mut fx.publish);
            if publish.is_empty() && fx.is_empty() {
                break;
            }
            for staged in publish {
                let queue = staged.queue.clone();
                queue.publish(staged, &mut fx);
            }
            if fx.is_empty() {
                break;
            }
        }
        first.unwrap_or_else(|| Ticket::ready(Ok(())))
    }

    /// Stages every dead letter of `fx` into its dead-letter queue.
    fn stage_dead_letters(&self, fx: &mut Effects) {
        for dead in std::mem::take(&mut fx.dead) {
            let mut headers = dead.record.headers.clone();
            headers.retain(|(k, _)| k != ORIGINAL_DESTINATION && k != DEATH_REASON);
            headers.push((
                ORIGINAL_DESTINATION.into(),
                format!("/queue/{}", dead.source),
            ));
            headers.push((DEATH_REASON.into(), dead.reason.as_str().into()));
            // The DLQ keeps the message until someone deals with it: its own expiry (the reason it
            // may be here) must not end it there too.
            let record = Arc::new(MessageRecord {
                headers,
                expires_at_ms: None,
                ..(*dead.record).clone()
            });
            if let Some(source) = self.find_queue(&dead.source) {
                QueueStats::add(&source.stats.dead_lettered, 1);
            }
            // A dead-letter queue takes what it is given: limits apply to producers, and refusing a
            // dead letter would leave it nowhere.
            let dlq = self.queue(&dead.dead_letter_queue);
            if dlq.stage(record.clone(), true, None, fx).is_err() {
                // Removed just now; the registry makes a new one under the same name.
                let again = self.queue(&dead.dead_letter_queue);
                let _ = again.stage(record, true, None, fx);
            }
        }
    }

    /// Reads a queue's next waiting messages from the store; the read is queued behind every
    /// commit submitted so far, so it sees each message the queue counted as paged.
    fn page_in(&self, page: PageIn) {
        let me = self.me.clone();
        let PageIn {
            queue,
            store_id,
            after,
            max,
            scan,
        } = page;
        let done = Box::new(move |read| {
            let Some(broker) = me.upgrade() else {
                return;
            };
            let mut fx = Effects::new();
            queue.paged_in(store_id, read, scan, &mut fx);
            drop(broker.apply(fx));
        });
        self.store.read(store_id, after, max, done);
    }
}
