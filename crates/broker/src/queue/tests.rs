use super::*;
use crate::clock::ManualClock;
use bytes::Bytes;
use tokio::sync::mpsc;

fn queue(kind: QueueKind) -> Arc<Queue> {
    Queue::new(
        "q",
        1,
        kind,
        QueueSettings::default(),
        Window::default(),
        Arc::new(ManualClock::new(0)),
    )
}

fn fx() -> Effects {
    Effects::new()
}

fn rec(body: &str) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        headers: vec![],
        body: Bytes::copy_from_slice(body.as_bytes()),
        enqueued_at_ms: 0,
        expires_at_ms: None,
    })
}

fn consumer(
    id: u64,
    ack: AckMode,
    prefetch: u32,
) -> (ConsumerSpec, mpsc::UnboundedReceiver<Outgoing>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let spec = ConsumerSpec {
        id: ConsumerId(id),
        subscription: Arc::from(id.to_string()),
        destination: Arc::from("/queue/q"),
        ack,
        prefetch,
        outbox: tx,
    };
    (spec, rx)
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Outgoing>) -> Vec<(String, u64, u32)> {
    let mut out = Vec::new();
    while let Ok(Outgoing::Message(d)) = rx.try_recv() {
        let seq = parse_ack_token(&d.message_id).unwrap().1;
        out.push((
            String::from_utf8(d.record.body.to_vec()).unwrap(),
            seq,
            d.delivery_count,
        ));
    }
    out
}

fn send(q: &Arc<Queue>, body: &str) -> u64 {
    let seq = q.next_seq();
    q.publish(seq, rec(body), true, &mut fx());
    seq
}

fn bodies(v: &[(String, u64, u32)]) -> Vec<&str> {
    v.iter().map(|(b, _, _)| b.as_str()).collect()
}

#[test]
fn fifo_with_one_consumer() {
    let q = queue(QueueKind::Durable);
    for b in ["a", "b", "c"] {
        send(&q, b);
    }
    let (spec, mut rx) = consumer(1, AckMode::ClientIndividual, 10);
    q.add_consumer(spec, &mut fx());
    assert_eq!(bodies(&drain(&mut rx)), ["a", "b", "c"]);
    assert_eq!(q.depth(), (0, 3, 1));
}

#[test]
fn competing_consumers_share_and_prefetch_bounds_each() {
    let q = queue(QueueKind::Durable);
    let (s1, mut r1) = consumer(1, AckMode::ClientIndividual, 2);
    let (s2, mut r2) = consumer(2, AckMode::ClientIndividual, 2);
    q.add_consumer(s1, &mut fx());
    q.add_consumer(s2, &mut fx());
    for b in ["a", "b", "c", "d", "e", "f"] {
        send(&q, b);
    }
    let got1 = drain(&mut r1);
    let got2 = drain(&mut r2);
    assert_eq!(bodies(&got1), ["a", "c"]);
    assert_eq!(bodies(&got2), ["b", "d"]);
    assert_eq!(q.depth(), (2, 4, 2));
    q.ack(ConsumerId(1), got1[0].1, false, &mut fx()).unwrap();
    assert_eq!(bodies(&drain(&mut r1)), ["e"]);
    assert!(drain(&mut r2).is_empty());
}

#[test]
fn cumulative_ack_settles_earlier_deliveries_only() {
    let q = queue(QueueKind::Durable);
    let (s, mut r) = consumer(1, AckMode::Client, 10);
    q.add_consumer(s, &mut fx());
    for b in ["a", "b", "c"] {
        send(&q, b);
    }
    let got = drain(&mut r);
    let mut effects = fx();
    q.ack(ConsumerId(1), got[1].1, true, &mut effects).unwrap();
    let deletes = effects
        .ops
        .iter()
        .filter(|o| matches!(o, Op::Delete { .. }))
        .count();
    assert_eq!(deletes, 2, "a and b deleted");
    assert_eq!(q.depth(), (0, 1, 1));
    assert_eq!(
        q.ack(ConsumerId(1), got[0].1, false, &mut fx())
            .unwrap_err(),
        NotInFlight
    );
    assert!(q.ack(ConsumerId(1), got[2].1, true, &mut fx()).is_ok());
}

#[test]
fn removed_consumer_returns_messages_ahead_of_newer_ones_redelivered() {
    let q = queue(QueueKind::Durable);
    let (s1, mut r1) = consumer(1, AckMode::ClientIndividual, 2);
    q.add_consumer(s1, &mut fx());
    for b in ["a", "b", "c"] {
        send(&q, b);
    }
    assert_eq!(bodies(&drain(&mut r1)), ["a", "b"]);
    q.remove_consumer(ConsumerId(1), &mut fx());
    let (s2, mut r2) = consumer(2, AckMode::ClientIndividual, 10);
    q.add_consumer(s2, &mut fx());
    let got = drain(&mut r2);
    assert_eq!(bodies(&got), ["a", "b", "c"]);
    let counts: Vec<u32> = got.iter().map(|g| g.2).collect();
    assert_eq!(counts, [2, 2, 1]);
}

#[test]
fn nack_requeues_at_once_or_hands_back_dead_letters() {
    let q = queue(QueueKind::Durable);
    let (s, mut r) = consumer(1, AckMode::ClientIndividual, 10);
    q.add_consumer(s, &mut fx());
    send(&q, "a");
    send(&q, "b");
    let got = drain(&mut r);
    let mut out = fx();
    q.nack(ConsumerId(1), got[0].1, false, true, &mut out)
        .unwrap();
    assert!(out.dead.is_empty());
    assert_eq!(drain(&mut r), [("a".to_owned(), got[0].1, 2)]);
    let mut out = fx();
    q.nack(ConsumerId(1), got[1].1, false, false, &mut out)
        .unwrap();
    assert_eq!(&out.dead[0].record.body[..], b"b");
    assert_eq!(out.dead[0].reason, DeathReason::Nack);
    assert_eq!(out.dead[0].dead_letter_queue, "DLQ.q");
    let deletes = out
        .ops
        .iter()
        .filter(|o| matches!(o, Op::Delete { .. }))
        .count();
    assert_eq!(deletes, 1, "deleted from the source queue");
    assert_eq!(q.depth(), (0, 1, 1));
}

#[test]
fn auto_ack_settles_only_after_written() {
    let q = queue(QueueKind::Durable);
    let (s, mut r) = consumer(1, AckMode::Auto, 1);
    q.add_consumer(s, &mut fx());
    send(&q, "a");
    send(&q, "b");
    let Ok(Outgoing::Message(d)) = r.try_recv() else {
        panic!("no delivery")
    };
    assert!(d.ack_id.is_none());
    assert!(r.try_recv().is_err(), "credit of 1 holds b back");
    let settle = d.auto_settle.unwrap();
    let mut out = fx();
    settle
        .queue
        .settle_written(settle.consumer, &[settle.seq], &mut out);
    assert_eq!(out.ops.len(), 1, "deleted once written");
    assert_eq!(bodies(&drain(&mut r)), ["b"]);
}

#[test]
fn transient_queue_drops_oldest_beyond_its_bound() {
    let q = queue(QueueKind::Transient { max_ready: 2 });
    for b in ["a", "b", "c"] {
        send(&q, b);
    }
    let mut staged = fx();
    q.stage(9, rec("x"), true, &mut staged);
    assert!(staged.ops.is_empty(), "transient queues never persist");
    staged.publish.clear();
    let (s, mut r) = consumer(1, AckMode::Auto, 10);
    q.add_consumer(s, &mut fx());
    assert_eq!(bodies(&drain(&mut r)), ["b", "c"]);
    assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 1);
}

#[test]
fn ack_tokens_parse() {
    assert_eq!(parse_ack_token("3-17"), Some((3, 17, None)));
    assert_eq!(parse_ack_token("3-17-2"), Some((3, 17, Some(2))));
    assert_eq!(parse_ack_token("x-1"), None);
    assert_eq!(parse_ack_token("1-2-3-4"), None);
}
