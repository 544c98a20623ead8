//! ACK and NACK. `client` subscriptions settle cumulatively, `client-individual` one message;
//! NACK returns messages to the queue at once (counting a delivery), or with `requeue: false`
//! dead-letters them (`x-death-reason: nack`) in the same store commit that removes them.

use stampede_proto::AckRequest;
use stampede_store::Ticket;

use crate::effects::Effects;
use crate::session::{Target, TxOp};
use crate::{BrokerError, Session};

impl Session {
    pub fn ack(&mut self, req: AckRequest) -> Result<Ticket, BrokerError> {
        let Some(target) = self.resolve_live(&req)? else {
            return Ok(Ticket::ready(Ok(())));
        };
        if let Some(tx) = req.transaction.clone() {
            return self.defer(&tx, TxOp::Ack(req));
        }
        let mut fx = Effects::new();
        settle(&target, None, &mut fx)?;
        Ok(self.broker.apply(fx))
    }

    pub fn nack(&mut self, req: AckRequest) -> Result<Ticket, BrokerError> {
        let Some(target) = self.resolve_live(&req)? else {
            return Ok(Ticket::ready(Ok(())));
        };
        if let Some(tx) = req.transaction.clone() {
            return self.defer(&tx, TxOp::Nack(req));
        }
        let mut fx = Effects::new();
        settle(&target, Some(req.requeue), &mut fx)?;
        Ok(self.broker.apply(fx))
    }

    fn defer(&mut self, tx: &str, op: TxOp) -> Result<Ticket, BrokerError> {
        self.transactions
            .get_mut(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?
            .push(op);
        Ok(Ticket::ready(Ok(())))
    }
}

/// ACKs (`nack == None`) or NACKs (`Some(requeue)`) what `t` names, recording effects in `fx`.
pub(crate) fn settle(t: &Target, nack: Option<bool>, fx: &mut Effects) -> Result<(), BrokerError> {
    let result = match nack {
        None => t.queue.ack(t.consumer, t.seq, t.cumulative, fx),
        Some(requeue) => t.queue.nack(t.consumer, t.seq, t.cumulative, requeue, fx),
    };
    result.map_err(|_| BrokerError::UnknownMessage(crate::message_id(t.queue.id(), t.seq)))
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
        let (broker, store) = broker();
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
        assert_eq!(stored(&store), 1, "moved, not copied");
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
    async fn dead_letter_routing_key_header_picks_the_dead_letter_queue() {
        let (broker, _) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("work", "m")).unwrap().await.unwrap();
        let mut sub = sub_frame("work", "1", AckMode::ClientIndividual);
        sub.headers
            .push("x-dead-letter-routing-key", "/queue/parked");
        s.subscribe(sub).unwrap();
        let d = deliveries(&mut rx).pop().unwrap();
        let mut req = ack_req(d.ack_id.as_deref().unwrap());
        req.requeue = false;
        s.nack(req).unwrap().await.unwrap();
        assert_eq!(broker.queue("parked").depth(), (1, 0, 0));
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

    #[tokio::test]
    async fn a_late_ack_after_the_visibility_timeout_is_harmless() {
        let (broker, clock, store) = broker_with_clock(|p| {
            p.defaults.visibility_timeout = Some(std::time::Duration::from_secs(5));
        });
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("q", "m")).unwrap().await.unwrap();
        s.subscribe(sub_frame("q", "1", AckMode::ClientIndividual))
            .unwrap();
        let first = deliveries(&mut rx).pop().unwrap();
        clock.advance(5_000);
        broker.tick();
        let again = deliveries(&mut rx)
            .pop()
            .expect("redelivered after the timeout");
        assert_eq!(again.delivery_count, 2);
        s.ack(ack_req(first.ack_id.as_deref().unwrap()))
            .expect("late ack is not an error");
        assert_eq!(stored(&store), 1, "the late ack settles nothing");
        s.ack(ack_req(again.ack_id.as_deref().unwrap()))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(stored(&store), 0);
    }
}
