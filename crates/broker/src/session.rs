//! One connection's view of the broker: its subscriptions and open transactions. The server owns a
//! `Session` per connection and calls one method per client command (see `cmd/`); closing it
//! returns every unsettled message to its queue and aborts open transactions.

use std::collections::HashMap;
use std::sync::Arc;

use stampede_proto::{AckMode, AckRequest, SendFrame};
use stampede_store::MessageRecord;

use crate::delivery::Outbox;
use crate::effects::Effects;
use crate::queue::{parse_ack_token, ConsumerId, Queue};
use crate::topic::Topic;
use crate::{Broker, BrokerError};

/// A subscription of this connection.
#[derive(Debug)]
pub(crate) struct Sub {
    pub consumer: ConsumerId,
    /// The queue it consumes: the destination's queue, or its own transient queue for a topic.
    pub queue: Arc<Queue>,
    pub ack: AckMode,
    /// Set for topic subscriptions, which detach from the topic when cancelled.
    pub topic: Option<Arc<Topic>>,
}

/// A command deferred to COMMIT.
#[derive(Debug)]
pub(crate) enum TxOp {
    Send(SendFrame),
    Ack(AckRequest),
    Nack(AckRequest),
}

/// A resolved ACK/NACK target.
pub(crate) struct Target {
    pub queue: Arc<Queue>,
    pub consumer: ConsumerId,
    pub seq: u64,
    pub cumulative: bool,
}

/// Per-connection broker state.
pub struct Session {
    pub(crate) broker: Arc<Broker>,
    id: u64,
    pub(crate) outbox: Outbox,
    pub(crate) subs: HashMap<String, Sub>,
    pub(crate) transactions: HashMap<String, Vec<TxOp>>,
}

impl Session {
    pub(crate) fn new(broker: Arc<Broker>, id: u64, outbox: Outbox) -> Session {
        Session {
            broker,
            id,
            outbox,
            subs: HashMap::new(),
            transactions: HashMap::new(),
        }
    }

    /// Broker-unique session number, used in the CONNECTED `session` header and logs.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Ends the session: open transactions are aborted and every subscription is cancelled, so its
    /// unsettled messages return to their queues for redelivery.
    pub fn close(&mut self) {
        self.transactions.clear();
        let mut fx = Effects::new();
        for (_, sub) in self.subs.drain() {
            detach(sub, &mut fx);
        }
        drop(self.broker.apply(fx));
    }

    /// Finds the in-flight delivery an ACK/NACK names.
    pub(crate) fn resolve(&self, req: &AckRequest) -> Result<Target, BrokerError> {
        let unknown = || BrokerError::UnknownMessage(req.id.clone());
        let (qid, seq, count) = parse_ack_token(&req.id).ok_or_else(unknown)?;
        let sub = match &req.subscription {
            Some(sid) => self.subs.get(sid).filter(|s| s.queue.id() == qid),
            // Several subscriptions may consume one queue: pick the one holding the message.
            None => self
                .subs
                .values()
                .find(|s| s.queue.id() == qid && s.queue.inflight_count(s.consumer, seq).is_some()),
        }
        .ok_or_else(unknown)?;
        let current = sub
            .queue
            .inflight_count(sub.consumer, seq)
            .ok_or_else(unknown)?;
        if count.is_some_and(|c| c != current) {
            // An ack token from an earlier delivery of a message that has since been redelivered.
            return Err(unknown());
        }
        Ok(Target {
            queue: sub.queue.clone(),
            consumer: sub.consumer,
            seq,
            cumulative: sub.ack == AckMode::Client,
        })
    }

    /// Like [`Session::resolve`], but an ACK/NACK of a delivery this connection held until its
    /// visibility timeout took it back resolves to `None`: the consumer was slow, not wrong, and
    /// the message is already on its way to another delivery.
    pub(crate) fn resolve_live(&self, req: &AckRequest) -> Result<Option<Target>, BrokerError> {
        match self.resolve(req) {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                let timed_out = parse_ack_token(&req.id).is_some_and(|(qid, seq, _)| {
                    self.subs
                        .iter()
                        .filter(|(id, _)| req.subscription.as_ref().is_none_or(|s| s == *id))
                        .any(|(_, s)| {
                            s.queue.id() == qid && s.queue.timed_out_from(s.consumer, seq)
                        })
                });
                if timed_out {
                    tracing::debug!(id = %req.id, "late settle of a delivery whose visibility timed out");
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Builds the stored record of a SEND.
    pub(crate) fn record(&self, send: SendFrame) -> Arc<MessageRecord> {
        let expires_at_ms = send
            .headers
            .get("expires")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0);
        Arc::new(MessageRecord {
            headers: send
                .headers
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            body: send.body,
            enqueued_at_ms: self.broker.now_ms(),
            expires_at_ms,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

pub(crate) fn detach(sub: Sub, fx: &mut Effects) {
    if let Some(topic) = &sub.topic {
        topic.detach(&sub.queue);
    }
    sub.queue.remove_consumer(sub.consumer, fx);
}
