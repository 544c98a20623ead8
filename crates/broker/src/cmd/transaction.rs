//! BEGIN, COMMIT and ABORT. A transaction's SENDs are invisible until COMMIT; its ACKs and NACKs
//! take effect at COMMIT. COMMIT validates everything first, then submits every store op in one
//! commit (atomic on disk) and only then makes the messages visible. ABORT discards the SENDs and
//! leaves ACKed messages unsettled.

use std::collections::HashSet;

use stampede_proto::SendFrame;
use stampede_store::Ticket;

use crate::cmd::ack::settle;
use crate::effects::Effects;
use crate::session::{Target, TxOp};
use crate::{BrokerError, Destination, Session};

/// A transaction op, validated and ready to apply. `Settle` carries `None` for an ACK and
/// `Some(requeue)` for a NACK; a settle of a delivery that timed out meanwhile is dropped.
enum Ready {
    Send(Destination, SendFrame),
    Settle(Target, Option<bool>),
    Nothing,
}

impl Session {
    pub fn begin(&mut self, tx: &str) -> Result<(), BrokerError> {
        if self.transactions.contains_key(tx) {
            return Err(BrokerError::DuplicateTransaction(tx.to_owned()));
        }
        self.transactions.insert(tx.to_owned(), Vec::new());
        Ok(())
    }

    pub fn abort(&mut self, tx: &str) -> Result<(), BrokerError> {
        self.transactions
            .remove(tx)
            .map(drop)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))
    }

    pub fn commit(&mut self, tx: &str) -> Result<Ticket, BrokerError> {
        let ops = self
            .transactions
            .remove(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
        let ready = ops
            .into_iter()
            .map(|op| self.validate(op))
            .collect::<Result<Vec<_>, _>>()?;
        check_settles(&ready)?;
        self.check_capacity(&ready)?;
        let mut fx = Effects::new();
        for op in ready {
            match op {
                Ready::Send(destination, send) => {
                    let record = self.record(send);
                    self.broker.route(&destination, record, &mut fx)?;
                }
                Ready::Settle(t, nack) => settle(&t, nack, &mut fx)?,
                Ready::Nothing => {}
            }
        }
        Ok(self.broker.apply(fx))
    }

    /// Refuses the whole COMMIT up front if a send would overfill its queue.
    fn check_capacity(&self, ready: &[Ready]) -> Result<(), BrokerError> {
        for op in ready {
            if let Ready::Send(Destination::Queue(name), send) = op {
                let size = send.body.len()
                    + send
                        .headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 2)
                        .sum::<usize>();
                self.broker
                    .queue(name)
                    .check_capacity(size)
                    .map_err(|full| BrokerError::QueueFull {
                        queue: name.clone(),
                        limit: full.limit,
                        value: full.value,
                    })?;
            }
        }
        Ok(())
    }

    fn validate(&self, op: TxOp) -> Result<Ready, BrokerError> {
        Ok(match op {
            TxOp::Send(send) => Ready::Send(Destination::parse(&send.destination)?, send),
            TxOp::Ack(req) => self
                .resolve_live(&req)?
                .map_or(Ready::Nothing, |t| Ready::Settle(t, None)),
            TxOp::Nack(req) => self
                .resolve_live(&req)?
                .map_or(Ready::Nothing, |t| Ready::Settle(t, Some(req.requeue))),
        })
    }
}

/// Fails unless every ACK and NACK of a transaction can be applied, so that a COMMIT applies all
/// or nothing: each must name a message still in flight that no earlier op of the same
/// transaction settles (a repeat, or a message an earlier cumulative ACK already covers).
fn check_settles(ready: &[Ready]) -> Result<(), BrokerError> {
    let mut claimed = HashSet::new();
    for op in ready {
        let Ready::Settle(t, _) = op else {
            continue;
        };
        let unknown = || BrokerError::UnknownMessage(crate::message_id(t.queue.id(), t.seq));
        let seqs = t
            .queue
            .settle_preview(t.consumer, t.seq, t.cumulative)
            .map_err(|_| unknown())?;
        if claimed.contains(&(t.queue.id(), t.seq)) {
            return Err(unknown());
        }
        claimed.extend(seqs.into_iter().map(|s| (t.queue.id(), s)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_support::*;
    use stampede_proto::AckMode;

    fn in_tx(mut f: stampede_proto::SendFrame, tx: &str) -> stampede_proto::SendFrame {
        f.transaction = Some(tx.to_owned());
        f
    }

    #[tokio::test]
    async fn sends_are_invisible_until_commit_then_stored_in_order() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        s.subscribe(sub_frame("q", "1", AckMode::Auto)).unwrap();
        s.begin("t").unwrap();
        for b in ["1", "2", "3"] {
            s.send(in_tx(send_frame("q", b), "t"))
                .unwrap()
                .await
                .unwrap();
        }
        assert!(bodies(&mut rx).is_empty());
        assert_eq!(stored(&store), 0);
        s.commit("t").unwrap().await.unwrap();
        assert_eq!(bodies(&mut rx), ["1", "2", "3"]);
    }

    #[tokio::test]
    async fn abort_discards_sends_and_leaves_acks_undone() {
        let (broker, _) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("q", "kept")).unwrap().await.unwrap();
        s.subscribe(sub_frame("q", "1", AckMode::ClientIndividual))
            .unwrap();
        let d = deliveries(&mut rx).pop().unwrap();
        s.begin("t").unwrap();
        s.send(in_tx(send_frame("q", "dropped"), "t"))
            .unwrap()
            .await
            .unwrap();
        let mut ack = ack_req(&d.message_id);
        ack.transaction = Some("t".into());
        s.ack(ack).unwrap().await.unwrap();
        s.abort("t").unwrap();
        assert_eq!(
            broker.queue("q").depth(),
            (0, 1, 1),
            "still in flight, nothing new"
        );
        s.close();
        assert_eq!(broker.queue("q").depth(), (1, 0, 0));
    }

    #[tokio::test]
    async fn transactional_ack_applies_at_commit() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("q", "m")).unwrap().await.unwrap();
        s.subscribe(sub_frame("q", "1", AckMode::Client)).unwrap();
        let d = deliveries(&mut rx).pop().unwrap();
        s.begin("t").unwrap();
        let mut ack = ack_req(&d.message_id);
        ack.transaction = Some("t".into());
        s.ack(ack).unwrap().await.unwrap();
        assert_eq!(stored(&store), 1);
        s.commit("t").unwrap().await.unwrap();
        assert_eq!(stored(&store), 0);
    }

    #[tokio::test]
    async fn a_failed_commit_applies_nothing() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        for b in ["1", "2"] {
            s.send(send_frame("q", b)).unwrap().await.unwrap();
        }
        s.subscribe(sub_frame("q", "1", AckMode::Client)).unwrap();
        let d = deliveries(&mut rx);
        let in_t = |i: usize, requeue: bool| {
            let mut req = ack_req(d[i].ack_id.as_deref().unwrap());
            req.transaction = Some("t".into());
            req.requeue = requeue;
            req
        };
        s.begin("t").unwrap();
        // NACK 1 to the DLQ, ACK 2 (cumulative, so it covers 1 too), then ACK 1 again: the last
        // cannot apply, so the COMMIT must apply none of them.
        s.nack(in_t(0, false)).unwrap().await.unwrap();
        s.ack(in_t(1, true)).unwrap().await.unwrap();
        s.ack(in_t(0, true)).unwrap().await.unwrap();
        s.send(in_tx(send_frame("q", "3"), "t"))
            .unwrap()
            .await
            .unwrap();
        assert!(s.commit("t").is_err());
        assert_eq!(broker.queue("q").depth(), (0, 2, 1), "both still in flight");
        let dlq = broker.find_queue("DLQ.q").map(|q| q.depth());
        assert_eq!(dlq.unwrap_or_default(), (0, 0, 0), "nothing dead-lettered");
        assert_eq!(stored(&store), 2, "nothing deleted or added");
    }

    #[tokio::test]
    async fn acks_of_each_message_in_order_commit_in_client_mode() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        for b in ["1", "2"] {
            s.send(send_frame("q", b)).unwrap().await.unwrap();
        }
        s.subscribe(sub_frame("q", "1", AckMode::Client)).unwrap();
        s.begin("t").unwrap();
        for d in deliveries(&mut rx) {
            let mut req = ack_req(d.ack_id.as_deref().unwrap());
            req.transaction = Some("t".into());
            s.ack(req).unwrap().await.unwrap();
        }
        s.commit("t").unwrap().await.unwrap();
        assert_eq!(broker.queue("q").depth(), (0, 0, 1));
        assert_eq!(stored(&store), 0);
    }

    #[test]
    fn unknown_and_duplicate_transactions_are_errors() {
        let (broker, _) = broker();
        let (mut s, _rx) = session(&broker);
        assert!(s.commit("nope").is_err());
        assert!(s.abort("nope").is_err());
        s.begin("t").unwrap();
        assert!(s.begin("t").is_err());
        assert!(s.send(in_tx(send_frame("q", "x"), "other")).is_err());
    }
}
