//! Durability (docs/behaviour.md "Durability"): what a restart keeps. Every receipted message comes back
//! in order with its bytes and headers, unacknowledged ones with their delivery count; nothing
//! ACKed and nothing uncommitted comes back — after a graceful stop and after SIGKILL, including a
//! crash test over several kill/restart cycles on one data directory.
//!
//! Each test keeps its own data directory (a `TempDir` it owns), so the brokers it starts one after
//! another share it and the recovery counts they log are exact.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use stampede_proto::{Command, Frame, Limits, StompCodec, Version};
use stampede_tests::{unique, Server, WAIT};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::codec::Framed;

use crate::support_q::{bodies, body, connect, h};

/// A broker on `data` with `STAMPEDE__<key>=<value>` for each of `env`.
pub(crate) fn start_on(data: &Path, env: &[(&str, &str)]) -> Server {
    env.iter()
        .fold(Server::builder().data_dir(data), |b, (k, v)| b.env(k, v))
        .start()
}

/// (queues, messages) from the broker's `recovery finished` event.
pub(crate) fn recovered(server: &Server) -> (u64, u64) {
    let line = server.wait_for_log(&["\"recovery finished\""]);
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    let f = &v["fields"];
    let n = |k: &str| {
        f[k].as_u64()
            .unwrap_or_else(|| panic!("no numeric {k:?} in {line}"))
    };
    (n("queues"), n("messages"))
}

/// The `delivery-count` of a MESSAGE.
fn count(f: &Frame) -> u32 {
    h(f, "delivery-count")
        .parse()
        .expect("numeric delivery-count")
}

fn redelivered(f: &Frame) -> bool {
    f.headers.get("redelivered") == Some("true")
}

#[tokio::test]
async fn every_receipted_message_survives_a_graceful_restart_in_order_and_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let small = format!("/queue/{}", unique("keep-small"));
    let large = format!("/queue/{}", unique("keep-large"));
    let headed = format!("/queue/{}", unique("keep-headers"));
    // Above storage.large_body_threshold (64 KiB): kept in a segment file, not in sled. NULs and
    // every byte value included.
    let big: Bytes = (0..200 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let special: &[(&str, &str)] = &[
        ("x-colon", "a:b:c"),
        ("x-newline", "line1\nline2"),
        ("x-backslash", "C:\\path\\to"),
        ("x-cr", "before\rafter"),
        ("x-unicode", "ünïcødé ✓ 日本"),
        ("x-empty", ""),
        ("x-key:with:colons", "value"),
        ("content-type", "application/json;charset=utf-8"),
        ("persistent", "true"),
    ];
    let small_bodies: Vec<String> = (0..30).map(|i| format!("small-{i}")).collect();
    let headed_bodies: Vec<String> = (0..5).map(|i| format!("headed-{i}")).collect();
    {
        let mut first = start_on(&data, &[]);
        let mut p = connect(first.addr).await;
        for b in &small_bodies {
            p.send_with(&small, b.clone(), &[("persistent", "true")])
                .await;
        }
        p.send(&large, "before-big").await;
        p.send_with(
            &large,
            big.clone(),
            &[("content-type", "application/octet-stream")],
        )
        .await;
        p.send(&large, "after-big").await;
        for b in &headed_bodies {
            p.send_with(&headed, b.clone(), special).await;
        }
        let status = first.stop();
        assert!(
            status.success(),
            "graceful stop: {status:?}\n{}",
            first.logs().join("\n")
        );
    }
    let segments = std::fs::read_dir(data.join("segments"))
        .expect("segments dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .count();
    assert!(segments >= 1, "the 200 KiB body is kept in a segment file");

    let second = start_on(&data, &[]);
    assert_eq!(recovered(&second), (3, 30 + 3 + 5), "(queues, messages)");
    let mut c = connect(second.addr).await;

    c.subscribe(&small, "small", "client-individual").await;
    let got = c.messages(30).await;
    assert_eq!(bodies(&got), small_bodies, "order kept");
    for m in &got {
        assert_eq!(m.headers.get("persistent"), Some("true"));
        assert_eq!(count(m), 1, "never delivered before: {m:?}");
        assert!(!redelivered(m), "{m:?}");
        c.ack(m).await;
    }

    c.subscribe(&large, "large", "auto").await;
    let got = c.messages(3).await;
    assert_eq!(body(&got[0]), "before-big");
    assert_eq!(got[1].body.len(), big.len());
    assert!(
        got[1].body == big,
        "200 KiB body corrupted across the restart"
    );
    assert_eq!(
        got[1].headers.get("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(body(&got[2]), "after-big");

    c.subscribe(&headed, "headed", "auto").await;
    let got = c.messages(5).await;
    assert_eq!(bodies(&got), headed_bodies);
    for m in &got {
        for (k, v) in special {
            assert_eq!(m.headers.get(k), Some(*v), "header {k:?} of {m:?}");
        }
    }
    c.assert_quiet().await;
}

/// A STOMP 1.2 connection that treats the broker vanishing as the end, not a failure: the crash
/// test kills the broker under its clients.
struct Raw(Framed<TcpStream, StompCodec>);

impl Raw {
    /// `None` if the broker is already gone.
    async fn connect(addr: SocketAddr) -> Option<Raw> {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut framed = Framed::new(stream, StompCodec::new(Limits::default()));
        let connect = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "localhost");
        framed.send(&connect).await.ok()?;
        let mut raw = Raw(framed);
        let reply = raw.recv().await?;
        assert_eq!(reply.command, Command::Connected, "{reply:?}");
        raw.0.codec_mut().set_version(Version::V1_2);
        Some(raw)
    }

    /// False once the broker is gone.
    async fn send(&mut self, frame: Frame) -> bool {
        self.0.send(&frame).await.is_ok()
    }

    /// The next frame; `None` once the broker is gone.
    async fn recv(&mut self) -> Option<Frame> {
        match tokio::time::timeout(WAIT, self.0.next()).await {
            Err(_) => panic!("no frame within {WAIT:?}"),
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(_) => None,
        }
    }
}

const CYCLES: usize = 5;
const PRODUCERS: usize = 3;
/// SENDs each producer keeps awaiting their RECEIPT, so several are in flight at the kill.
const WINDOW: usize = 4;
/// A cycle's broker is killed once this many SEND receipts ...
const KILL_AFTER_RECEIPTS: usize = 24;
/// ... and this many ACK receipts have arrived in it.
const KILL_AFTER_ACKS: usize = 3;

/// What the clients of the crash test saw, across every cycle.
#[derive(Default)]
struct Ledger {
    /// Bodies of every SEND written (or about to be).
    sent: HashSet<String>,
    /// Bodies whose SEND got its RECEIPT: the broker promised to keep them.
    receipted: HashSet<String>,
    /// Bodies an ACK was written for.
    ack_sent: HashSet<String>,
    /// Bodies whose ACK got its RECEIPT: the broker promised they are gone.
    acked: HashSet<String>,
    /// Every MESSAGE received, in order: (body, redelivered, delivery-count).
    seen: Vec<(String, bool, u32)>,
    /// Anything the clients saw that must not happen.
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// Fires once a cycle has seen enough receipts of both kinds.
#[derive(Default)]
struct Trigger {
    receipts: AtomicUsize,
    acks: AtomicUsize,
    fired: AtomicBool,
    kill: Notify,
}

impl Trigger {
    fn check(&self) {
        if self.receipts.load(Ordering::SeqCst) >= KILL_AFTER_RECEIPTS
            && self.acks.load(Ordering::SeqCst) >= KILL_AFTER_ACKS
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            self.kill.notify_one();
        }
    }
}

/// Body `c<cycle>-p<producer>-<n>`: (producer, cycle, n).
fn parse_body(b: &str) -> (usize, usize, usize) {
    let parts: Vec<usize> = b
        .split('-')
        .map(|p| p.trim_start_matches(['c', 'p']).parse().expect(b))
        .collect();
    (parts[1], parts[0], parts[2])
}

/// The consumer leaves every third message unacknowledged on its first delivery, and half of those
/// on later ones, so messages are in flight at each kill and come back.
fn should_ack(b: &str, redelivered: bool) -> bool {
    let (_, _, n) = parse_body(b);
    n % 3 != 0 || (redelivered && n % 2 == 0)
}

/// Sends persistent messages with receipts, `WINDOW` at a time, until the broker dies.
async fn produce(
    addr: SocketAddr,
    cycle: usize,
    p: usize,
    queue: String,
    l: Shared,
    t: Arc<Trigger>,
) {
    let Some(mut c) = Raw::connect(addr).await else {
        return;
    };
    let (mut n, mut outstanding) = (0, 0);
    loop {
        while outstanding < WINDOW {
            let b = format!("c{cycle}-p{p}-{n:04}");
            l.lock().unwrap().sent.insert(b.clone());
            let send = Frame::new(Command::Send)
                .header("destination", queue.as_str())
                .header("persistent", "true")
                .header("receipt", b.as_str())
                .body(b);
            if !c.send(send).await {
                return;
            }
            n += 1;
            outstanding += 1;
        }
        let Some(f) = c.recv().await else {
            return;
        };
        let mut ledger = l.lock().unwrap();
        match (f.command, f.headers.get("receipt-id")) {
            (Command::Receipt, Some(id)) if ledger.sent.contains(id) => {
                ledger.receipted.insert(id.to_owned());
                drop(ledger);
                outstanding -= 1;
                t.receipts.fetch_add(1, Ordering::SeqCst);
                t.check();
            }
            _ => ledger.violations.push(format!("producer {p} got {f:?}")),
        }
    }
}

/// A client-individual consumer that ACKs (with receipts) what [`should_ack`] says.
async fn consume(addr: SocketAddr, queue: String, l: Shared, t: Arc<Trigger>) {
    let Some(mut c) = Raw::connect(addr).await else {
        return;
    };
    let subscribe = Frame::new(Command::Subscribe)
        .header("destination", queue.as_str())
        .header("id", "crash")
        .header("ack", "client-individual");
    if !c.send(subscribe).await {
        return;
    }
    while let Some(f) = c.recv().await {
        match f.command {
            Command::Message => {
                let b = body(&f);
                let again = redelivered(&f);
                {
                    let mut ledger = l.lock().unwrap();
                    if ledger.acked.contains(&b) {
                        ledger
                            .violations
                            .push(format!("{b} delivered after its ACK was receipted: {f:?}"));
                    }
                    ledger.seen.push((b.clone(), again, count(&f)));
                    if !should_ack(&b, again) {
                        continue;
                    }
                    ledger.ack_sent.insert(b.clone());
                }
                let ack = Frame::new(Command::Ack)
                    .header("id", h(&f, "ack"))
                    .header("receipt", format!("ack={b}"));
                if !c.send(ack).await {
                    return;
                }
            }
            Command::Receipt => {
                let id = h(&f, "receipt-id").strip_prefix("ack=").map(str::to_owned);
                let mut ledger = l.lock().unwrap();
                match id {
                    Some(b) if ledger.ack_sent.contains(&b) => {
                        ledger.acked.insert(b);
                        drop(ledger);
                        t.acks.fetch_add(1, Ordering::SeqCst);
                        t.check();
                    }
                    _ => ledger.violations.push(format!("consumer got {f:?}")),
                }
            }
            _ => l
                .lock()
                .unwrap()
                .violations
                .push(format!("consumer got {f:?}")),
        }
    }
}

/// What a restarted broker may hold: at least every receipted message no ACK was sent for, at most
/// every sent message whose ACK was not receipted.
fn assert_recovery_bounds(server: &Server, l: &Ledger, when: &str) {
    let (_, messages) = recovered(server);
    let at_least = l.receipted.difference(&l.ack_sent).count() as u64;
    let at_most = l.sent.difference(&l.acked).count() as u64;
    assert!(
        (at_least..=at_most).contains(&messages),
        "{when}: recovered {messages} messages, expected {at_least}..={at_most}"
    );
}

/// THE crash test. Producers send persistent messages with receipts to two queues while a consumer
/// ACKs some of one queue's; the broker is SIGKILLed once enough receipts arrived (mid-stream:
/// SENDs and ACKs are in flight) and restarted on the same data directory, `CYCLES` times. Then
/// everything is drained. Every receipted message no ACK was sent for is there; nothing whose ACK
/// was receipted and nothing never sent is; delivery counts never go back; each producer's
/// messages drain in the order it sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_test_sigkill_mid_stream_loses_no_receipted_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Messages come back many times here; none may move to a dead-letter queue.
    let env = [("QUEUES__DEFAULTS__MAX_DELIVERIES", "0")];
    let queues = [
        format!("/queue/{}", unique("crash-consumed")),
        format!("/queue/{}", unique("crash-backlog")),
    ];
    let ledger: Shared = Default::default();
    for cycle in 0..CYCLES {
        let mut server = start_on(&data, &env);
        if cycle > 0 {
            assert_recovery_bounds(&server, &ledger.lock().unwrap(), &format!("cycle {cycle}"));
        }
        let trigger = Arc::new(Trigger::default());
        let mut tasks = vec![tokio::spawn(consume(
            server.addr,
            queues[0].clone(),
            ledger.clone(),
            trigger.clone(),
        ))];
        for p in 0..PRODUCERS {
            tasks.push(tokio::spawn(produce(
                server.addr,
                cycle,
                p,
                queues[p % 2].clone(),
                ledger.clone(),
                trigger.clone(),
            )));
        }
        tokio::time::timeout(WAIT, trigger.kill.notified())
            .await
            .unwrap_or_else(|_| panic!("cycle {cycle}: too few receipts before the deadline"));
        server.kill();
        for task in tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("clients notice the broker is gone")
                .expect("client task panicked");
        }
    }

    let server = start_on(&data, &env);
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    assert_recovery_bounds(&server, &l, "final restart");
    let (_, messages) = recovered(&server);
    let mut c = connect(server.addr).await;
    c.subscribe(&queues[0], "consumed", "auto").await;
    c.subscribe(&queues[1], "backlog", "auto").await;
    let drained = c.messages(messages as usize).await;
    c.assert_quiet().await;

    assert!(l.violations.is_empty(), "{:#?}", l.violations);
    let mut seen = l.seen.clone();
    seen.extend(drained.iter().map(|m| (body(m), redelivered(m), count(m))));
    let drained: Vec<String> = bodies(&drained);
    let left: HashSet<&String> = drained.iter().collect();
    assert_eq!(left.len(), drained.len(), "a message stored twice");
    let never_sent: Vec<&&String> = left.iter().filter(|b| !l.sent.contains(**b)).collect();
    assert!(never_sent.is_empty(), "never sent: {never_sent:?}");
    let mut lost: Vec<&String> = l
        .receipted
        .difference(&l.ack_sent)
        .filter(|b| !left.contains(b))
        .collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "receipted, never ACKed, gone after a crash: {lost:?}"
    );
    let back: Vec<&&String> = left.iter().filter(|b| l.acked.contains(**b)).collect();
    assert!(back.is_empty(), "ACK receipted, yet back: {back:?}");

    // Every delivery of a message counts: a later one has a higher count (even across a kill, as
    // the count is durable before the MESSAGE is written), and `redelivered` is set exactly when
    // the count says so.
    let mut deliveries: HashMap<&str, Vec<(bool, u32)>> = HashMap::new();
    for (b, again, n) in &seen {
        deliveries.entry(b).or_default().push((*again, *n));
    }
    let mut wrong: Vec<String> = deliveries
        .iter()
        .filter(|(_, ds)| {
            ds.iter().any(|&(again, n)| again != (n > 1)) || ds.windows(2).any(|w| w[1].1 <= w[0].1)
        })
        .map(|(b, ds)| format!("{b}: {ds:?}"))
        .collect();
    wrong.sort();
    assert!(
        wrong.is_empty(),
        "deliveries as (redelivered, delivery-count): {wrong:#?}"
    );

    // Each producer's messages still drain in the order it sent them (the queue is FIFO by the
    // order it accepted them, redeliveries back in their place).
    let mut last: HashMap<usize, (usize, usize)> = HashMap::new();
    for b in &drained {
        let (p, cycle, n) = parse_body(b);
        if let Some(prev) = last.insert(p, (cycle, n)) {
            assert!(
                prev < (cycle, n),
                "{b} drained after c{}-p{p}-{:04}",
                prev.0,
                prev.1
            );
        }
    }

    // The run exercised what it claims to.
    assert!(l.acked.len() >= CYCLES * KILL_AFTER_ACKS);
    assert!(
        deliveries.values().any(|ds| ds.len() > 1),
        "no message was delivered again after a crash"
    );
    let lost_in_flight = l.sent.len() - l.receipted.len();
    eprintln!(
        "crash test: {} sent, {} receipted, {} acked, {} drained, {} unreceipted at kills",
        l.sent.len(),
        l.receipted.len(),
        l.acked.len(),
        drained.len(),
        lost_in_flight
    );
}

#[tokio::test]
async fn unacked_messages_come_back_after_restarts_with_their_delivery_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let q = format!("/queue/{}", unique("unacked"));

    let mut first = start_on(&data, &[]);
    let mut p = connect(first.addr).await;
    for b in ["m1", "m2", "m3"] {
        p.send_with(&q, b, &[("x-tag", b)]).await;
    }
    let mut c = connect(first.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let got = c.messages(3).await;
    assert_eq!(bodies(&got), ["m1", "m2", "m3"]);
    assert!(got.iter().all(|m| count(m) == 1 && !redelivered(m)));
    c.ack(&got[1]).await;
    assert!(first.stop().success());

    let mut second = start_on(&data, &[]);
    assert_eq!(recovered(&second).1, 2);
    let mut c = connect(second.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let got = c.messages(2).await;
    assert_eq!(bodies(&got), ["m1", "m3"]);
    for m in &got {
        assert!(redelivered(m), "{m:?}");
        assert_eq!(count(m), 2, "{m:?}");
        assert_eq!(m.headers.get("x-tag"), Some(body(m).as_str()));
    }
    c.assert_quiet().await;
    assert!(second.stop().success());

    // Delivered once more and not acknowledged: the count keeps growing across restarts.
    let third = start_on(&data, &[]);
    assert_eq!(recovered(&third).1, 2);
    let mut c = connect(third.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let got = c.messages(2).await;
    assert_eq!(bodies(&got), ["m1", "m3"]);
    assert!(
        got.iter().all(|m| redelivered(m) && count(m) == 3),
        "{got:?}"
    );
    c.ack(&got[0]).await;
    c.ack(&got[1]).await;
    c.assert_quiet().await;
}

#[tokio::test]
async fn an_acked_message_does_not_come_back_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let q = format!("/queue/{}", unique("acked"));

    let mut first = start_on(&data, &[]);
    let mut p = connect(first.addr).await;
    for b in ["gone-1", "kept", "gone-2"] {
        p.send(&q, b).await;
    }
    let mut c = connect(first.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let got = c.messages(3).await;
    c.ack(&got[0]).await;
    // The ACK's RECEIPT means its delete is on disk: nothing may undo it.
    c.ack(&got[2]).await;
    first.kill();

    let second = start_on(&data, &[]);
    assert_eq!(recovered(&second), (1, 1), "(queues, messages)");
    let mut c = connect(second.addr).await;
    c.subscribe(&q, "s", "auto").await;
    assert_eq!(c.bodies(1).await, ["kept"]);
    c.assert_quiet().await;
}

#[tokio::test]
async fn a_committed_transaction_survives_sigkill_an_open_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let q = format!("/queue/{}", unique("tx-crash"));
    let other = format!("/queue/{}", unique("tx-crash-other"));

    let mut first = start_on(&data, &[]);
    let mut p = connect(first.addr).await;
    p.request(Frame::new(Command::Begin).header("transaction", "committed"))
        .await;
    for b in ["t1", "t2", "t3"] {
        p.send_with(&q, b, &[("transaction", "committed")]).await;
    }
    // Its RECEIPT is the promise that all three are on disk.
    p.request(Frame::new(Command::Commit).header("transaction", "committed"))
        .await;
    p.request(Frame::new(Command::Begin).header("transaction", "open"))
        .await;
    p.send_with(&q, "uncommitted", &[("transaction", "open")])
        .await;
    p.send_with(&other, "u2", &[("transaction", "open")]).await;
    // A plain SEND after them on the same connection: the broker has handled the open
    // transaction's SENDs by the time this is receipted.
    p.send(&other, "plain").await;
    first.kill();

    let second = start_on(&data, &[]);
    assert_eq!(recovered(&second).1, 4, "t1, t2, t3 and plain");
    let mut c = connect(second.addr).await;
    c.subscribe(&q, "q", "auto").await;
    assert_eq!(c.bodies(3).await, ["t1", "t2", "t3"]);
    c.subscribe(&other, "o", "auto").await;
    assert_eq!(c.bodies(1).await, ["plain"]);
    c.assert_quiet().await;
}

#[tokio::test]
async fn a_delivery_seen_just_before_sigkill_comes_back_flagged_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let q = format!("/queue/{}", unique("seen-then-killed"));

    let mut first = start_on(&data, &[]);
    let mut p = connect(first.addr).await;
    p.send(&q, "seen").await;
    let mut c = connect(first.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let m = c.message().await;
    assert_eq!((body(&m), count(&m)), ("seen".to_owned(), 1));
    // The consumer has the message in hand: whatever happens next, it has been delivered once.
    first.kill();

    let second = start_on(&data, &[]);
    let mut c = connect(second.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let again = c.message().await;
    assert_eq!(body(&again), "seen");
    assert_eq!(
        (redelivered(&again), count(&again)),
        (true, 2),
        "a second delivery of a message the client already had: {again:?}"
    );
}
