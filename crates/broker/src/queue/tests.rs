//! The queue state machine on its own: FIFO, competing consumers, credit, cumulative settles,
//! requeue order, NACK, auto-ack, transient bounds. Effects are inspected, not applied.

use super::*;
use crate::clock::ManualClock;
use crate::delivery::{AckMode, Delivery};
use crate::effects::DeathReason;
use crate::ids::DeliveryTag;
use crate::settle::Outcome;
use bytes::Bytes;
use stampede_store::{MessageRecord, Op};
use std::ops::{Deref, DerefMut};
use tokio::sync::mpsc;

/// Effects a queue test inspects and then throws away (there is no broker to apply them).
#[derive(Default)]
pub(super) struct Fx(pub Effects);

impl Deref for Fx {
    type Target = Effects;
    fn deref(&self) -> &Effects {
        &self.0
    }
}

impl DerefMut for Fx {
    fn deref_mut(&mut self) -> &mut Effects {
        &mut self.0
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        self.0.ops.clear();
    }
}

pub(super) fn fx() -> Fx {
    Fx::default()
}

pub(super) struct ChannelOutbox(pub mpsc::UnboundedSender<Box<Delivery>>);

impl Outbox for ChannelOutbox {
    fn deliver(&self, d: Box<Delivery>) -> bool {
        self.0.send(d).is_ok()
    }
}

pub(super) fn queue_with(
    name: &str,
    kind: QueueKind,
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
) -> Arc<Queue> {
    Queue::new(QueueInit {
        name: Arc::from(name),
        number: 7,
        kind,
        settings: Arc::new(settings),
        store_id: matches!(kind, QueueKind::Durable).then_some(70),
        next_seq: 1,
        attrs: Default::default(),
        owner: None,
        env: Arc::new(QueueEnv {
            window: Window::default(),
            clock,
            timer: Arc::new(Timer::default()),
        }),
    })
}

fn queue(kind: QueueKind) -> Arc<Queue> {
    queue_with(
        "q",
        kind,
        QueueSettings::default(),
        Arc::new(ManualClock::new(0)),
    )
}

pub(super) fn rec(body: &str, expires_at_ms: Option<u64>, at: u64) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        headers: vec![],
        body: Bytes::copy_from_slice(body.as_bytes()),
        enqueued_at_ms: at,
        expires_at_ms,
    })
}

pub(super) fn consumer(
    id: u64,
    ack: AckMode,
    prefetch: u32,
) -> (ConsumerSpec, mpsc::UnboundedReceiver<Box<Delivery>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let spec = ConsumerSpec {
        id: ConsumerId(id),
        session: 0,
        sole: false,
        pattern: false,
        subscription: Arc::from(id.to_string()),
        destination: Arc::from("/queue/q"),
        principal: Arc::from("test"),
        ack,
        prefetch,
        window_bytes: None,
        channel: None,
        outbox: Arc::new(ChannelOutbox(tx)),
    };
    (spec, rx)
}

/// Stages and publishes one message (as the broker would after committing its put).
pub(super) fn publish(q: &Arc<Queue>, record: Arc<MessageRecord>, fx: &mut Effects) -> u64 {
    q.stage(record, true, None, fx).unwrap();
    let staged = fx.publish.pop().unwrap();
    let seq = staged.seq;
    q.publish(staged, fx);
    seq
}

fn send(q: &Arc<Queue>, body: &str) -> u64 {
    publish(q, rec(body, None, 0), &mut fx())
}

pub(super) fn drain(rx: &mut mpsc::UnboundedReceiver<Box<Delivery>>) -> Vec<(String, u64, u32)> {
    let mut out = Vec::new();
    while let Ok(d) = rx.try_recv() {
        out.push((
            String::from_utf8(d.record.body.to_vec()).unwrap(),
            d.seq,
            d.delivery_count,
        ));
    }
    out
}

fn bodies(v: &[(String, u64, u32)]) -> Vec<&str> {
    v.iter().map(|(b, _, _)| b.as_str()).collect()
}

pub(super) fn depth(q: &Queue) -> (u64, u64, usize) {
    let s = q.view();
    (s.visible, s.in_flight, s.consumers.len())
}

fn deletes(fx: &Effects) -> usize {
    fx.ops
        .iter()
        .filter(|o| matches!(o, Op::Delete { .. }))
        .count()
}

#[test]
fn fifo_with_one_consumer() {
    let q = queue(QueueKind::Durable);
    for b in ["a", "b", "c"] {
        send(&q, b);
    }
    let (spec, mut rx) = consumer(1, AckMode::ClientIndividual, 10);
    q.add_consumer(spec, &mut fx()).unwrap();
    assert_eq!(bodies(&drain(&mut rx)), ["a", "b", "c"]);
    assert_eq!(depth(&q), (0, 3, 1));
}

#[test]
fn competing_consumers_share_and_prefetch_bounds_each() {
    let q = queue(QueueKind::Durable);
    let (s1, mut r1) = consumer(1, AckMode::ClientIndividual, 2);
    let (s2, mut r2) = consumer(2, AckMode::ClientIndividual, 2);
    q.add_consumer(s1, &mut fx()).unwrap();
    q.add_consumer(s2, &mut fx()).unwrap();
    for b in ["a", "b", "c", "d", "e", "f"] {
        send(&q, b);
    }
    let got1 = drain(&mut r1);
    let got2 = drain(&mut r2);
    assert_eq!(bodies(&got1), ["a", "c"]);
    assert_eq!(bodies(&got2), ["b", "d"]);
    assert_eq!(depth(&q), (2, 4, 2));
    q.settle(
        ConsumerId(1),
        got1[0].1,
        None,
        false,
        Outcome::Ack,
        &mut fx(),
    )
    .unwrap();
    assert_eq!(bodies(&drain(&mut r1)), ["e"]);
    assert!(drain(&mut r2).is_empty());
}

#[test]
fn a_byte_window_bounds_unsettled_bytes_beside_the_count() {
    let q = queue(QueueKind::Durable);
    let size = rec("0123456789", None, 0).size() as u64;
    // Room for two and a bit: a third is sent while fewer than 25 bytes are unsettled.
    let (mut s, mut r) = consumer(1, AckMode::ClientIndividual, 100);
    s.window_bytes = Some(2 * size + 5);
    q.add_consumer(s, &mut fx()).unwrap();
    let seqs: Vec<u64> = (0..5).map(|_| send(&q, "0123456789")).collect();
    assert_eq!(drain(&mut r).len(), 3, "sent while below the window");
    let settle = |seq| {
        q.settle(ConsumerId(1), seq, None, false, Outcome::Ack, &mut fx())
            .unwrap()
    };
    settle(seqs[0]);
    assert_eq!(drain(&mut r).len(), 1, "one settled, one more");
    assert_eq!(depth(&q), (1, 3, 1));

    // 0: one message at a time, however small; one larger than the window is not stuck.
    let q = queue(QueueKind::Durable);
    let (mut s, mut r) = consumer(1, AckMode::ClientIndividual, 100);
    s.window_bytes = Some(0);
    q.add_consumer(s, &mut fx()).unwrap();
    let a = send(&q, "a");
    send(&q, &"b".repeat(10_000));
    assert_eq!(bodies(&drain(&mut r)), ["a"]);
    q.settle(ConsumerId(1), a, None, false, Outcome::Ack, &mut fx())
        .unwrap();
    assert_eq!(drain(&mut r).len(), 1, "the large one, alone");
}

#[test]
fn cumulative_ack_settles_earlier_deliveries_only() {
    let q = queue(QueueKind::Durable);
    let (s, mut r) = consumer(1, AckMode::Client, 10);
    q.add_consumer(s, &mut fx()).unwrap();
    for b in ["a", "b", "c"] {
        send(&q, b);
    }
    let got = drain(&mut r);
    let mut effects = fx();
    q.settle(
        ConsumerId(1),
        got[1].1,
        None,
        true,
        Outcome::Ack,
        &mut effects,
    )
    .unwrap();
    assert_eq!(deletes(&effects), 2, "a and b deleted");
    assert_eq!(depth(&q), (0, 1, 1));
    assert_eq!(
        q.settle(
            ConsumerId(1),
            got[0].1,
            None,
            false,
            Outcome::Ack,
            &mut fx()
        )
        .unwrap_err(),
        NotInFlight
    );
    assert!(q
        .settle(ConsumerId(1), got[2].1, None, true, Outcome::Ack, &mut fx())
        .is_ok());
}

#[test]
fn removed_consumer_returns_messages_ahead_of_newer_ones_redelivered() {
    let q = queue(QueueKind::Durable);
    let (s1, mut r1) = consumer(1, AckMode::ClientIndividual, 2);
    q.add_consumer(s1, &mut fx()).unwrap();
    for b in ["a", "b", "c"] {
        send(&q, b);
    }
    assert_eq!(bodies(&drain(&mut r1)), ["a", "b"]);
    q.remove_consumer(ConsumerId(1), &mut fx());
    let (s2, mut r2) = consumer(2, AckMode::ClientIndividual, 10);
    q.add_consumer(s2, &mut fx()).unwrap();
    let got = drain(&mut r2);
    assert_eq!(bodies(&got), ["a", "b", "c"]);
    let counts: Vec<u32> = got.iter().map(|g| g.2).collect();
    assert_eq!(counts, [2, 2, 1]);
}

#[test]
fn nack_requeues_at_once_or_hands_back_dead_letters() {
    let q = queue(QueueKind::Durable);
    let (s, mut r) = consumer(1, AckMode::ClientIndividual, 10);
    q.add_consumer(s, &mut fx()).unwrap();
    send(&q, "a");
    send(&q, "b");
    let got = drain(&mut r);
    let mut out = fx();
    let requeue = Outcome::Nack { requeue: true };
    q.settle(ConsumerId(1), got[0].1, None, false, requeue, &mut out)
        .unwrap();
    assert!(out.dead.is_empty());
    assert_eq!(drain(&mut r), [("a".to_owned(), got[0].1, 2)]);
    let mut out = fx();
    let dead = Outcome::Nack { requeue: false };
    q.settle(ConsumerId(1), got[1].1, None, false, dead, &mut out)
        .unwrap();
    assert_eq!(&out.dead[0].record.body[..], b"b");
    assert_eq!(out.dead[0].reason, DeathReason::Nack);
    assert_eq!(&*out.dead[0].dead_letter_queue, "DLQ.q");
    assert_eq!(deletes(&out), 1, "deleted from the source queue");
    assert_eq!(depth(&q), (0, 1, 1));
}

#[test]
fn auto_ack_settles_only_after_written() {
    let q = queue(QueueKind::Durable);
    let (s, mut r) = consumer(1, AckMode::Auto, 1);
    q.add_consumer(s, &mut fx()).unwrap();
    send(&q, "a");
    send(&q, "b");
    let d = r.try_recv().expect("a delivery");
    assert!(d.ack_id().is_none());
    assert!(r.try_recv().is_err(), "credit of 1 holds b back");
    let ack = d.auto_ack.expect("auto-ack token");
    let mut out = fx();
    ack.queue.settle_written(ack.consumer, &[ack.seq], &mut out);
    assert_eq!(deletes(&out), 1, "deleted once written");
    assert_eq!(bodies(&drain(&mut r)), ["b"]);
}

#[test]
fn transient_queue_drops_oldest_beyond_its_bound_and_never_persists() {
    let q = queue(QueueKind::Transient { max_ready: 2 });
    let mut effects = fx();
    for b in ["a", "b", "c"] {
        publish(&q, rec(b, None, 0), &mut effects);
    }
    assert!(effects.ops.is_empty(), "transient queues never persist");
    let (s, mut r) = consumer(1, AckMode::Auto, 10);
    q.add_consumer(s, &mut fx()).unwrap();
    assert_eq!(bodies(&drain(&mut r)), ["b", "c"]);
    assert_eq!(q.view().counters.dropped, 1);
}

#[test]
fn reservations_count_towards_the_limits_until_published_or_dropped() {
    let q = queue_with(
        "q",
        QueueKind::Durable,
        QueueSettings {
            max_messages: Some(2),
            max_bytes: Some(10),
            ..QueueSettings::default()
        },
        Arc::new(ManualClock::new(0)),
    );
    let a = q.reserve(4).unwrap();
    let b = q.reserve(4).unwrap();
    assert_eq!(q.reserve(0).unwrap_err().limit, "max_messages");
    drop(b);
    assert_eq!(
        q.reserve(7).unwrap_err().limit,
        "max_bytes",
        "4 held + 7 > 10"
    );
    let mut out = fx();
    q.stage(rec("1234", None, 0), true, Some(a), &mut out)
        .unwrap();
    let staged = out.publish.pop().unwrap();
    q.publish(staged, &mut out);
    assert!(
        q.reserve(6).is_ok(),
        "the published message replaced its reservation"
    );
    assert_eq!(q.reserve(7).unwrap_err().limit, "max_bytes");
}

#[test]
fn a_message_staged_before_a_purge_is_not_published_after_it() {
    let q = queue(QueueKind::Durable);
    send(&q, "old");
    let mut before = fx();
    q.stage(rec("racing", None, 0), true, None, &mut before)
        .unwrap();
    let staged = before.publish.pop().unwrap();
    let mut purge = fx();
    let create = Op::PutQueue {
        id: 71,
        name: Arc::from("q"),
        attrs: Bytes::new(),
        next_seq: 1,
    };
    assert_eq!(q.purge(71, create, &mut purge), 1);
    assert!(matches!(purge.ops.last(), Some(Op::DropQueue { id: 70 })));
    q.publish(staged, &mut fx());
    assert_eq!(depth(&q), (0, 0, 0), "its put went with the old store id");
    send(&q, "new");
    assert_eq!(depth(&q), (1, 0, 0));
    assert_eq!(q.store_id(), Some(71));
}

#[test]
fn delivery_tags_name_the_queue_number_and_delivery() {
    let q = queue(QueueKind::Durable);
    let (s, mut r) = consumer(1, AckMode::ClientIndividual, 10);
    q.add_consumer(s, &mut fx()).unwrap();
    send(&q, "a");
    let d = r.try_recv().unwrap();
    assert_eq!(d.message_id(), "7-1");
    let tag = DeliveryTag::parse(&d.ack_id().unwrap()).unwrap();
    assert_eq!((tag.queue, tag.seq, tag.count), (7, 1, Some(1)));
}

/// A message sent to `channel` of the queue (no channel: to the queue itself).
fn send_to_channel(q: &Arc<Queue>, channel: Option<&str>, body: &str) -> u64 {
    let mut record = rec(body, None, 0);
    if let Some(c) = channel {
        let r = Arc::get_mut(&mut record).unwrap();
        r.headers
            .push(crate::channel::sent_to("ocid1.queue.oc1.phx.q", c));
    }
    publish(q, record, &mut fx())
}

/// The queue the channel tests send to: only OCID queues hold channels.
fn ocid_queue() -> Arc<Queue> {
    queue_with(
        "ocid1.queue.oc1.phx.q",
        QueueKind::Durable,
        QueueSettings::default(),
        Arc::new(ManualClock::new(0)),
    )
}

fn channel_consumer(
    id: u64,
    channel: &str,
    prefetch: u32,
) -> (ConsumerSpec, mpsc::UnboundedReceiver<Box<Delivery>>) {
    let (mut spec, rx) = consumer(id, AckMode::ClientIndividual, prefetch);
    spec.channel = Some(Arc::from(channel));
    (spec, rx)
}

#[test]
fn channel_consumers_take_their_channel_in_order_and_the_whole_queue_takes_any() {
    let q = ocid_queue();
    for (c, b) in [
        (Some("a"), "a1"),
        (Some("b"), "b1"),
        (Some("a"), "a2"),
        (None, "plain"),
        (Some("b"), "b2"),
        (Some("a"), "a3"),
    ] {
        send_to_channel(&q, c, b);
    }
    let (sa, mut ra) = channel_consumer(1, "a", 2);
    q.add_consumer(sa, &mut fx()).unwrap();
    let got_a = drain(&mut ra);
    assert_eq!(
        bodies(&got_a),
        ["a1", "a2"],
        "FIFO within the channel, credit-bounded"
    );
    let (sb, mut rb) = channel_consumer(2, "b", 10);
    q.add_consumer(sb, &mut fx()).unwrap();
    assert_eq!(bodies(&drain(&mut rb)), ["b1", "b2"]);
    let (sc, mut rc) = channel_consumer(3, "c", 10);
    q.add_consumer(sc, &mut fx()).unwrap();
    assert!(drain(&mut rc).is_empty(), "nothing was sent to c");
    // A whole-queue consumer takes what is left, whatever its channel.
    let (sw, mut rw) = consumer(4, AckMode::ClientIndividual, 1);
    q.add_consumer(sw, &mut fx()).unwrap();
    assert_eq!(bodies(&drain(&mut rw)), ["plain"]);
    // a1 comes back (NACK): it is a's oldest again and goes to a's consumer, before a3.
    q.settle(
        ConsumerId(1),
        got_a[0].1,
        None,
        false,
        Outcome::Nack { requeue: true },
        &mut fx(),
    )
    .unwrap();
    assert_eq!(bodies(&drain(&mut ra)), ["a1"]);
    q.settle(
        ConsumerId(1),
        got_a[1].1,
        None,
        false,
        Outcome::Ack,
        &mut fx(),
    )
    .unwrap();
    assert_eq!(bodies(&drain(&mut ra)), ["a3"]);
    assert_eq!(depth(&q), (0, 5, 4), "a2 acked; the rest held");
}

#[test]
fn a_pull_with_a_channel_filter_takes_only_that_channel() {
    let q = ocid_queue();
    for (c, b) in [(Some("x"), "x1"), (Some("y"), "y1"), (Some("x"), "x2")] {
        send_to_channel(&q, c, b);
    }
    let body = |p: &Pulled| String::from_utf8(p.record.body.to_vec()).unwrap();
    let mut out = fx();
    let xs: Vec<String> = q
        .pull(10, None, Some("x"), &mut out)
        .iter()
        .map(body)
        .collect();
    assert_eq!(xs, ["x1", "x2"]);
    let rest: Vec<String> = q.pull(10, None, None, &mut out).iter().map(body).collect();
    assert_eq!(rest, ["y1"]);
}

#[test]
fn a_store_read_between_a_put_and_its_publication_leaves_the_message_to_it() {
    let q = Queue::new(QueueInit {
        name: Arc::from("q"),
        number: 7,
        kind: QueueKind::Durable,
        settings: Arc::new(QueueSettings::default()),
        store_id: Some(70),
        next_seq: 1,
        attrs: Default::default(),
        owner: None,
        env: Arc::new(QueueEnv {
            window: Window {
                messages: 2,
                bytes: u64::MAX,
            },
            clock: Arc::new(ManualClock::new(0)),
            timer: Arc::new(Timer::default()),
        }),
    });
    let mut seqs = Vec::new();
    let mut records = Vec::new();
    for b in ["a", "b", "c", "d"] {
        let r = rec(b, None, 0);
        records.push(r.clone());
        seqs.push(publish(&q, r, &mut fx()));
    }
    // c and d wait in the store only. e is staged (its put submitted), not yet published.
    let mut f = fx();
    let e = rec("e", None, 0);
    q.stage(e.clone(), true, None, &mut f).unwrap();
    let staged = f.publish.pop().unwrap();
    let e_seq = staged.seq;
    // A page-in read that ran after e's put: it returns c, d and e.
    let stored = |seq, record: &Arc<MessageRecord>| stampede_store::StoredMessage {
        seq,
        record: record.clone(),
        deliveries: 0,
    };
    let read = vec![
        stored(seqs[2], &records[2]),
        stored(seqs[3], &records[3]),
        stored(e_seq, &e),
    ];
    let (spec, mut rx) = consumer(1, AckMode::ClientIndividual, 10);
    q.add_consumer(spec, &mut fx()).unwrap();
    q.paged_in(70, Ok(read), None, &mut fx());
    q.publish(staged, &mut fx());
    assert_eq!(bodies(&drain(&mut rx)), ["a", "b", "c", "d", "e"]);
    let view = q.view();
    assert_eq!((view.visible, view.in_flight), (0, 5), "counted once each");
}
