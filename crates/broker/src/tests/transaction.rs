//! Transactions: invisible until COMMIT, all or nothing, and — the two defects this design fixes
//! — a COMMIT that fails changes nothing, and its SENDs count against a queue's limits together.

use super::*;
use crate::{BrokerError, Transaction};

fn settle(tx: &mut Transaction, c: &Conn, d: &Delivery, outcome: Outcome) {
    let tag = DeliveryTag::parse(&d.ack_id().unwrap()).unwrap();
    tx.settle(&c.subs[&*d.subscription], &tag, outcome).unwrap();
}

#[tokio::test]
async fn sends_are_invisible_until_commit_then_stored_in_order() {
    let env = Env::new();
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::Auto);
    let mut tx = Transaction::new();
    for b in ["1", "2", "3"] {
        tx.publish(to("q"), message(b));
    }
    assert!(c.bodies().is_empty());
    assert_eq!(env.stored(), 0);
    env.broker.commit(tx).await.unwrap().await.unwrap();
    assert_eq!(c.bodies(), ["1", "2", "3"]);
}

#[tokio::test]
async fn dropping_a_transaction_discards_sends_and_leaves_acks_undone() {
    let env = Env::new();
    send(&env.broker, "q", "kept").await;
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::ClientIndividual);
    let d = c.deliveries().pop().unwrap();
    let mut tx = Transaction::new();
    tx.publish(to("q"), message("dropped"));
    settle(&mut tx, &c, &d, Outcome::Ack);
    drop(tx);
    assert_eq!(env.depth("q"), (0, 1, 1), "still in flight, nothing new");
    drop(c);
    assert_eq!(env.depth("q"), (1, 0, 0));
}

#[tokio::test]
async fn a_transactional_ack_applies_at_commit() {
    let env = Env::new();
    send(&env.broker, "q", "m").await;
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::Client);
    let d = c.deliveries().pop().unwrap();
    let mut tx = Transaction::new();
    settle(&mut tx, &c, &d, Outcome::Ack);
    assert_eq!(env.stored(), 1);
    env.broker.commit(tx).await.unwrap().await.unwrap();
    assert_eq!(env.stored(), 0);
}

#[tokio::test]
async fn a_commit_with_a_settle_that_cannot_apply_applies_nothing() {
    let env = Env::new();
    for b in ["1", "2"] {
        send(&env.broker, "q", b).await;
    }
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::Client);
    let d = c.deliveries();
    let mut tx = Transaction::new();
    // NACK 1 to the DLQ, ACK 2 (cumulative, so it covers 1 too), then ACK 1 again: the last
    // cannot apply, so the COMMIT must apply none of them.
    settle(&mut tx, &c, &d[0], Outcome::Nack { requeue: false });
    settle(&mut tx, &c, &d[1], Outcome::Ack);
    settle(&mut tx, &c, &d[0], Outcome::Ack);
    tx.publish(to("q"), message("3"));
    assert!(matches!(
        env.broker.commit(tx).await,
        Err(BrokerError::UnknownMessage(_))
    ));
    assert_eq!(env.depth("q"), (0, 2, 1), "both still in flight");
    assert_eq!(env.depth("DLQ.q"), (0, 0, 0), "nothing dead-lettered");
    assert_eq!(env.stored(), 2, "nothing deleted or added");
}

#[tokio::test]
async fn acks_of_each_message_in_order_commit_in_client_mode() {
    let env = Env::new();
    for b in ["1", "2"] {
        send(&env.broker, "q", b).await;
    }
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::Client);
    let mut tx = Transaction::new();
    for d in c.deliveries() {
        settle(&mut tx, &c, &d, Outcome::Ack);
    }
    env.broker.commit(tx).await.unwrap().await.unwrap();
    assert_eq!(env.depth("q"), (0, 0, 1));
    assert_eq!(env.stored(), 0);
}

/// Defect (a): a COMMIT refused by the storage alarm after its ACKs were recorded must leave the
/// ACKed message deliverable. The old COMMIT settled the ACK in memory first, then failed to route
/// the SEND: the message was neither waiting nor in flight, and came back only after a restart.
#[tokio::test]
async fn a_commit_refused_by_the_storage_alarm_leaves_its_acked_messages_deliverable() {
    let env = Env::new();
    send(&env.broker, "q", "m1").await;
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::ClientIndividual);
    let m1 = c.deliveries().pop().unwrap();
    let mut tx = Transaction::new();
    settle(&mut tx, &c, &m1, Outcome::Ack);
    tx.publish(to("q"), message("m2"));
    env.broker
        .set_storage_alarm(Some("disk nearly full".into()));
    let err = env.broker.commit(tx).await.unwrap_err();
    assert!(matches!(err, BrokerError::StorageFull(_)), "{err}");
    assert_eq!(
        env.depth("q"),
        (0, 1, 1),
        "m1 still in flight to its consumer"
    );
    drop(c);
    assert_eq!(
        env.depth("q"),
        (1, 0, 0),
        "and back in the queue when it leaves"
    );
    let mut other = env.conn();
    other.subscribe("q", "2", AckMode::Auto);
    assert_eq!(other.bodies(), ["m1"]);
}

/// Defect (a), the other way in: a delivery whose visibility timed out between the COMMIT's checks
/// and its application must be left deliverable, and the rest of the COMMIT still applies.
#[tokio::test]
async fn a_settle_whose_delivery_timed_out_during_the_commit_is_dropped_not_stranding_it() {
    let env = Env::with(|_, p| {
        p.defaults.visibility_timeout = Some(std::time::Duration::from_secs(5));
    });
    send(&env.broker, "q", "m1").await;
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::ClientIndividual);
    let m1 = c.deliveries().pop().unwrap();
    let mut tx = Transaction::new();
    settle(&mut tx, &c, &m1, Outcome::Ack);
    tx.publish(to("q"), message("m2"));
    let ready = env.broker.prepare(tx).expect("everything checks out");
    env.advance(5_000);
    let again = c.deliveries();
    assert_eq!(again.len(), 1, "m1 was taken back and delivered again");
    env.broker.execute(ready).await.unwrap();
    assert_eq!(
        env.depth("q"),
        (0, 2, 1),
        "m1 in flight again, m2 delivered"
    );
    assert_eq!(
        env.stored(),
        2,
        "the late ACK deleted nothing; m2 is stored"
    );
}

/// Defect (b): a transaction's SENDs count against a bounded queue together. The old COMMIT
/// checked each SEND against the queue as it was before the COMMIT, so four SENDs in one
/// transaction went into a queue bounded at two.
#[tokio::test]
async fn a_transactions_sends_count_against_the_queue_limit_together() {
    let env = Env::with(|_, p| p.defaults.max_messages = Some(2));
    let mut tx = Transaction::new();
    for b in ["1", "2", "3", "4"] {
        tx.publish(to("q"), message(b));
    }
    let err = env.broker.commit(tx).await.unwrap_err();
    assert!(
        matches!(
            err,
            BrokerError::QueueFull {
                limit: "max_messages",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.depth("q"), (0, 0, 0));
    assert_eq!(env.stored(), 0, "nothing of the failed COMMIT is stored");
    send(&env.broker, "q", "alone").await;
    let mut tx = Transaction::new();
    tx.publish(to("q"), message("fits"));
    tx.publish(to("q"), message("does not"));
    assert!(
        env.broker.commit(tx).await.is_err(),
        "one held plus two is over two"
    );
    let mut tx = Transaction::new();
    tx.publish(to("q"), message("fits"));
    env.broker.commit(tx).await.unwrap().await.unwrap();
    assert_eq!(env.depth("q"), (2, 0, 0));
}

#[tokio::test]
async fn a_byte_limit_counts_a_transactions_sends_together_too() {
    let env = Env::with(|_, p| p.defaults.max_bytes = Some(10));
    let mut tx = Transaction::new();
    tx.publish(to("q"), message("123456"));
    tx.publish(to("q"), message("123456"));
    assert!(matches!(
        env.broker.commit(tx).await,
        Err(BrokerError::QueueFull {
            limit: "max_bytes",
            ..
        })
    ));
    assert_eq!(env.stored(), 0);
}
