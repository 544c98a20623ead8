//! ACK and NACK. `client` subscriptions settle cumulatively, `client-individual` one message;
//! NACK returns messages to the queue at once, or with `requeue: false` moves them to the queue's
//! dead-letter queue (`DLQ.<queue>`) with `x-original-destination` and `x-death-reason`.

use std::sync::Arc;

use stampede_proto::AckRequest;
use stampede_store::{MessageRecord, Op, Ticket};

use crate::queue::Queue;

use crate::session::{Target, TxOp};
use crate::{BrokerError, Session};

impl Session {
    pub fn ack(&mut self, req: AckRequest) -> Result<Ticket, BrokerError> {
        let target = self.resolve(&req)?;
        if let Some(tx) = req.transaction.clone() {
            return self.defer(&tx, TxOp::Ack(req));
        }
        let ops = settle_ack(&target)?;
        Ok(self.broker.commit(ops))
    }

    pub fn nack(&mut self, req: AckRequest) -> Result<Ticket, BrokerError> {
        let target = self.resolve(&req)?;
        if let Some(tx) = req.transaction.clone() {
            return self.defer(&tx, TxOp::Nack(req));
        }
        let mut ops = Vec::new();
        let dead = settle_nack(&target, req.requeue, &mut ops)?;
        Ok(self.dead_letter(&target, dead, ops))
    }

    fn defer(&mut self, tx: &str, op: TxOp) -> Result<Ticket, BrokerError> {
        self.transactions
            .get_mut(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?
            .push(op);
        Ok(Ticket::ready(Ok(())))
    }

    /// Moves `dead` into the dead-letter queue of `target`'s queue; the deletes from the source in
    /// `ops` and the puts into the DLQ commit together.
    pub(crate) fn dead_letter(
        &self,
        target: &Target,
        dead: Vec<Arc<MessageRecord>>,
        mut ops: Vec<Op>,
    ) -> Ticket {
        let staged = self.stage_dead_letters(&target.queue, dead, &mut ops);
        let ticket = self.broker.commit(ops);
        publish_staged(staged);
        ticket
    }

    /// Prepares dead letters of `source` for its DLQ: adds their puts to `ops` and returns what to
    /// publish once those are submitted.
    pub(crate) fn stage_dead_letters(
        &self,
        source: &Queue,
        dead: Vec<Arc<MessageRecord>>,
        ops: &mut Vec<Op>,
    ) -> Vec<Staged> {
        if dead.is_empty() {
            return Vec::new();
        }
        let source = source.name();
        let dlq = self.broker.queue(&format!("DLQ.{source}"));
        dead.into_iter()
            .map(|record| {
                let mut headers = record.headers.clone();
                headers.retain(|(k, _)| k != "x-original-destination" && k != "x-death-reason");
                headers.push(("x-original-destination".into(), format!("/queue/{source}")));
                headers.push(("x-death-reason".into(), "nack".into()));
                let record = Arc::new(MessageRecord {
                    headers,
                    ..(*record).clone()
                });
                let seq = dlq.next_seq();
                ops.extend(dlq.put_op(seq, &record));
                (dlq.clone(), seq, record)
            })
            .collect()
    }
}

/// A message whose store op is prepared and that becomes visible once the op is submitted.
pub(crate) type Staged = (Arc<Queue>, u64, Arc<MessageRecord>);

pub(crate) fn publish_staged(staged: Vec<Staged>) {
    for (queue, seq, record) in staged {
        queue.publish(seq, record);
    }
}

pub(crate) fn settle_ack(t: &Target) -> Result<Vec<Op>, BrokerError> {
    t.queue
        .ack(t.consumer, t.seq, t.cumulative)
        .map_err(|_| BrokerError::UnknownMessage(crate::message_id(t.queue.id(), t.seq)))
}

pub(crate) fn settle_nack(
    t: &Target,
    requeue: bool,
    ops: &mut Vec<Op>,
) -> Result<Vec<Arc<MessageRecord>>, BrokerError> {
    let out = t
        .queue
        .nack(t.consumer, t.seq, t.cumulative, requeue)
        .map_err(|_| BrokerError::UnknownMessage(crate::message_id(t.queue.id(), t.seq)))?;
    ops.extend(out.ops);
    Ok(out.dead)
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_support::*;
    use stampede_proto::AckMode;

    #[tokio::test]
    async fn ack_deletes_durably_and_unknown_ids_are_errors() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("q", "m")).unwrap().await.unwrap();
        s.subscribe(sub_frame("q", "1", AckMode::ClientIndividual))
            .unwrap();
        let d = deliveries(&mut rx).pop().unwrap();
        assert!(s.ack(ack_req("99-1")).is_err());
        assert!(s.ack(ack_req("garbage")).is_err());
        s.ack(ack_req(d.ack_id.as_deref().unwrap()))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(stored(&store), 0);
        assert!(
            s.ack(ack_req(&d.message_id)).is_err(),
            "second ack of the same message"
        );
    }

    #[tokio::test]
    async fn nack_without_requeue_dead_letters_with_reason() {
        let (broker, _) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("/queue/orders", "m"))
            .unwrap()
            .await
            .unwrap();
        s.subscribe(sub_frame("/queue/orders", "1", AckMode::Client))
            .unwrap();
        let d = deliveries(&mut rx).pop().unwrap();
        let mut req = ack_req(&d.message_id);
        req.requeue = false;
        s.nack(req).unwrap().await.unwrap();
        assert_eq!(broker.queue("orders").depth(), (0, 0, 1));
        s.subscribe(sub_frame("/queue/DLQ.orders", "2", AckMode::Auto))
            .unwrap();
        let dead = deliveries(&mut rx).pop().unwrap();
        assert_eq!(dead.record.header("x-death-reason"), Some("nack"));
        assert_eq!(
            dead.record.header("x-original-destination"),
            Some("/queue/orders")
        );
    }

    #[tokio::test]
    async fn ack_without_subscription_finds_the_holder_among_subscriptions_of_one_queue() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        s.subscribe(sub_frame("q", "a", AckMode::ClientIndividual))
            .unwrap();
        s.subscribe(sub_frame("q", "b", AckMode::ClientIndividual))
            .unwrap();
        for b in ["1", "2"] {
            s.send(send_frame("q", b)).unwrap().await.unwrap();
        }
        let got = deliveries(&mut rx);
        assert_ne!(got[0].subscription, got[1].subscription);
        for d in &got {
            s.ack(ack_req(d.ack_id.as_deref().unwrap()))
                .unwrap()
                .await
                .unwrap();
        }
        assert!(store.recover().unwrap().iter().all(|(_, m)| m.is_empty()));
    }

    #[tokio::test]
    async fn stale_ack_token_of_an_earlier_delivery_is_rejected() {
        let (broker, _) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("q", "m")).unwrap().await.unwrap();
        s.subscribe(sub_frame("q", "1", AckMode::ClientIndividual))
            .unwrap();
        let first = deliveries(&mut rx).pop().unwrap();
        s.nack(ack_req(first.ack_id.as_deref().unwrap()))
            .unwrap()
            .await
            .unwrap();
        let second = deliveries(&mut rx).pop().unwrap();
        assert_eq!(second.delivery_count, 2);
        assert!(s.ack(ack_req(first.ack_id.as_deref().unwrap())).is_err());
        s.ack(ack_req(second.ack_id.as_deref().unwrap()))
            .unwrap()
            .await
            .unwrap();
    }
}
