//! `--request-reply`: round-trip latency between two clients over queues, the way an RPC over a
//! broker works. Each requester (`--producers`) subscribes to its own reply queue, then sends one
//! request at a time to the request queue (`--destination`) with a `reply-to` header naming that
//! queue, and waits for the answer before it sends the next (closed loop: one request in flight
//! per requester). Each responder (`--consumers`) subscribes to the request queue and sends every
//! request's body back, unchanged, to the destination its `reply-to` names.
//!
//! The round trip is timed inside the requester (SEND written → reply read), so it covers four
//! hops: requester → broker → responder → broker → requester. Every reply is checked against the
//! requests sent ([`ReplyTracker`]): a reply that never came is missing, a second one for the same
//! request a duplicate, one for a request never sent unexpected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use stampede_proto::{AckMode, Command, Frame, Version};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::accounting::{SeqSet, Verdict};
use crate::config::{Config, Stop};
use crate::conn::{broker_error, put_bare, Conn, ConnectOptions};
use crate::payload::{Stamp, STAMP_LEN};
use crate::progress::{spawn_progress, Shared};
use crate::stats::{histogram, ns_since, Percentiles, Rate};
use crate::{BenchError, Plan};

/// How long a closing DISCONNECT may wait for its receipt.
const GOODBYE: Duration = Duration::from_secs(5);

/// The replies one requester got, against the requests it sent (sequences `0..sent`). Pure data,
/// so the rules are unit-tested.
#[derive(Debug, Clone, Default)]
pub struct ReplyTracker {
    answered: SeqSet,
    sent: u64,
    received: u64,
    duplicates: u64,
    unexpected: u64,
    redelivered: u64,
}

/// What one reply was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The first answer to a request that was sent.
    Answer,
    /// A request answered before.
    Duplicate,
    /// An answer to a request that was never sent.
    Unexpected,
}

impl ReplyTracker {
    /// Registers the next request and returns its sequence number.
    pub fn next_request(&mut self) -> u64 {
        self.sent += 1;
        self.sent - 1
    }

    pub fn record(&mut self, seq: u64, redelivered: bool) -> ReplyOutcome {
        self.received += 1;
        self.redelivered += u64::from(redelivered);
        if seq >= self.sent {
            self.unexpected += 1;
            ReplyOutcome::Unexpected
        } else if self.answered.insert(seq) {
            ReplyOutcome::Answer
        } else {
            self.duplicates += 1;
            ReplyOutcome::Duplicate
        }
    }

    /// Requests registered so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn is_answered(&self, seq: u64) -> bool {
        self.answered.contains(seq)
    }

    /// `expected` is the requests sent; `missing` those without an answer.
    pub fn verdict(&self) -> Verdict {
        Verdict {
            expected: self.sent,
            received: self.received,
            missing: self.sent - self.answered.len(),
            duplicates: self.duplicates,
            redelivered: self.redelivered,
            unexpected: self.unexpected,
        }
    }
}

/// Adds up the requesters' verdicts.
pub fn merge_verdicts(vs: impl IntoIterator<Item = Verdict>) -> Verdict {
    vs.into_iter().fold(Verdict::default(), |a, v| Verdict {
        expected: a.expected + v.expected,
        received: a.received + v.received,
        missing: a.missing + v.missing,
        duplicates: a.duplicates + v.duplicates,
        redelivered: a.redelivered + v.redelivered,
        unexpected: a.unexpected + v.unexpected,
    })
}

/// The result of a `--request-reply` run.
#[derive(Debug, Clone, Serialize)]
pub struct RequestReplyReport {
    pub broker: Option<String>,
    pub url: String,
    /// The request queue; requester `i` gets its replies on `<destination>-reply-<run>-<i>`.
    pub destination: String,
    pub requesters: u16,
    pub responders: u16,
    pub size: usize,
    /// The `persistent` header sent: true, false, or null when left out.
    pub persistent: Option<bool>,
    pub warmup: f64,
    /// Completed round trips after the warm-up, over the measured interval.
    pub round_trips: Rate,
    /// SEND of the request → arrival of its reply, after the warm-up.
    pub round_trip_us: Option<Percentiles>,
    /// Replies against requests, summed over the requesters.
    pub accounting: Verdict,
    /// Requests the responders answered.
    pub served: u64,
    /// Messages of another run, or without a stamp, on a reply queue.
    pub foreign: u64,
    pub errors: Vec<String>,
}

/// Rejects flags that make no sense for a closed-loop request/reply run.
pub fn validate(c: &Config) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::Config(m.to_owned()));
    if c.consumers == 0 {
        return bad("--request-reply needs at least one responder (--consumers)");
    }
    if c.is_topic() {
        return bad("--request-reply runs over queues: give a /queue/ --destination");
    }
    if c.drain || c.rate.is_some() || c.tx > 0 || c.receipt_every > 0 || c.window.is_some() {
        return bad(
            "--request-reply is closed-loop (one request in flight per requester): it takes no \
             --drain, --rate, --tx, --receipt-every or --window",
        );
    }
    Ok(())
}

pub async fn run_request_reply(
    config: &Config,
    connect: ConnectOptions,
) -> Result<RequestReplyReport, BenchError> {
    let plan = Arc::new(Plan::new(config, connect));
    let expected = match plan.stop {
        Stop::Count(n) => Some(n * u64::from(config.producers)),
        Stop::After(_) => None,
    };
    let shared = Shared::new(expected);
    let progress_done = tokio_util::sync::CancellationToken::new();
    let progress = spawn_progress(shared.clone(), progress_done.clone(), !config.quiet);
    let _stop_progress = progress_done.clone().drop_guard();

    let mut errors = Vec::new();
    let mut responders: Vec<JoinHandle<ResponderReport>> = Vec::new();
    for _ in 0..config.consumers {
        let (tx, rx) = oneshot::channel();
        responders.push(tokio::spawn(respond(plan.clone(), shared.clone(), tx)));
        if rx.await.is_err() {
            errors.push("a responder failed before subscribing; no request was sent".into());
            break;
        }
    }
    let mut requesters = Vec::new();
    if errors.is_empty() {
        // Requesters subscribe first; the clock starts once all of them are ready.
        let go = Arc::new(tokio::sync::Barrier::new(usize::from(config.producers)));
        for id in 0..config.producers {
            requesters.push(tokio::spawn(request(
                id,
                plan.clone(),
                shared.clone(),
                go.clone(),
            )));
        }
    }
    let mut reqs = Vec::new();
    for t in requesters {
        reqs.push(t.await.map_err(|e| BenchError::Task {
            role: "requester",
            reason: e.to_string(),
        })?);
    }
    shared.stop.cancel();
    let mut served = 0;
    let mut broker = None;
    for (i, t) in responders.into_iter().enumerate() {
        let r = t.await.map_err(|e| BenchError::Task {
            role: "responder",
            reason: e.to_string(),
        })?;
        served += r.served;
        broker = broker.or(r.server);
        if let Some(e) = r.error {
            errors.push(format!("responder {i}: {e}"));
        }
    }
    progress_done.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    let mut latency = histogram();
    for (i, r) in reqs.iter().enumerate() {
        let _ = latency.add(&r.latency);
        if let Some(e) = &r.error {
            errors.push(format!("requester {i}: {e}"));
        }
    }
    let started = reqs.iter().map(|r| r.started).min();
    let last = reqs.iter().filter_map(|r| r.last_measured).max();
    let measured: u64 = reqs.iter().map(|r| r.measured).sum();
    Ok(RequestReplyReport {
        broker: reqs.iter().find_map(|r| r.server.clone()).or(broker),
        url: config.shown_url(),
        destination: plan.destination.clone(),
        requesters: config.producers,
        responders: config.consumers,
        size: config.size,
        persistent: config.persistent_header().map(|p| p == "true"),
        warmup: config.warmup,
        round_trips: Rate::new(
            measured,
            measured * config.size as u64,
            match (started, last) {
                (Some(s), Some(l)) => l.saturating_duration_since(s),
                _ => Duration::ZERO,
            },
        ),
        round_trip_us: Percentiles::of(&latency),
        accounting: merge_verdicts(reqs.iter().map(|r| r.tracker.verdict())),
        served,
        foreign: reqs.iter().map(|r| r.foreign).sum(),
        errors,
    })
}

/// Requester `id`'s reply queue.
fn reply_queue(plan: &Plan, id: u16) -> String {
    format!("{}-reply-{:04x}-{id}", plan.destination, plan.run_tag)
}

struct RequesterReport {
    tracker: ReplyTracker,
    latency: Histogram<u64>,
    measured: u64,
    /// Start of the measured interval (end of the warm-up).
    started: Instant,
    last_measured: Option<Instant>,
    foreign: u64,
    server: Option<String>,
    error: Option<BenchError>,
}

async fn request(
    id: u16,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    go: Arc<tokio::sync::Barrier>,
) -> RequesterReport {
    let mut r = RequesterReport {
        tracker: ReplyTracker::default(),
        latency: histogram(),
        measured: 0,
        started: Instant::now(),
        last_measured: None,
        foreign: 0,
        server: None,
        error: None,
    };
    if let Err(e) = requester_loop(id, &plan, &shared, &go, &mut r).await {
        r.error = Some(e);
    }
    r
}

async fn requester_loop(
    id: u16,
    plan: &Plan,
    shared: &Shared,
    go: &tokio::sync::Barrier,
    r: &mut RequesterReport,
) -> Result<(), BenchError> {
    // Until connected and subscribed, a failure must not leave the other requesters waiting.
    let setup = async {
        let mut conn = Conn::connect(&plan.connect).await?;
        let reply_to = reply_queue(plan, id);
        // Nothing can arrive before the receipt: no request has been sent yet.
        conn.subscribe(&reply_to, "auto", None).await?;
        Ok::<_, BenchError>((conn, reply_to))
    }
    .await;
    go.wait().await;
    let (mut conn, reply_to) = setup?;
    r.server = conn.server.clone();
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    r.started = measure_from;
    let (limit, deadline) = match plan.stop {
        Stop::Count(n) => (n, None),
        Stop::After(d) => (u64::MAX, Some(start + d)),
    };
    let padding = vec![b'x'; plan.size - STAMP_LEN];
    let mut body = Vec::with_capacity(plan.size);
    while r.tracker.sent() < limit && deadline.is_none_or(|d| Instant::now() < d) {
        let seq = r.tracker.next_request();
        let sent_at = Instant::now();
        let mut stamp = [0u8; STAMP_LEN];
        Stamp {
            run: plan.run_tag,
            producer: id,
            seq,
            sent_ns: ns_since(plan.epoch, sent_at),
        }
        .write(&mut stamp);
        body.clear();
        body.extend_from_slice(&stamp);
        body.extend_from_slice(&padding);
        let mut send = Frame::new(Command::Send)
            .header("destination", plan.destination.as_str())
            .header("reply-to", reply_to.as_str());
        if let Some(p) = plan.persistent {
            send = send.header("persistent", p);
        }
        conn.send(&send.body(body.clone()));
        conn.flush().await?;
        shared.sent.add(1);
        while !r.tracker.is_answered(seq) {
            let f = conn.next_frame("a reply").await?;
            let now = Instant::now();
            match f.command {
                Command::Message => {}
                Command::Error => return Err(broker_error(&f)),
                _ => continue,
            }
            match Stamp::read(&f.body) {
                Some(s) if s.run == plan.run_tag && s.producer == id => {
                    let redelivered = f.headers.get("redelivered") == Some("true");
                    if r.tracker.record(s.seq, redelivered) == ReplyOutcome::Answer && s.seq == seq
                    {
                        shared.received.add(1);
                        if sent_at >= measure_from {
                            let rtt = now.saturating_duration_since(sent_at).as_nanos() as u64;
                            r.latency.saturating_record(rtt.max(1));
                            r.measured += 1;
                            r.last_measured = Some(now);
                        }
                    }
                }
                _ => r.foreign += 1,
            }
        }
    }
    // Late frames: a reply arriving now can only be a duplicate or unexpected.
    let mut late = Vec::new();
    conn.disconnect(GOODBYE, |f| late.push(f)).await?;
    for f in late.iter().filter(|f| f.command == Command::Message) {
        match Stamp::read(&f.body) {
            Some(s) if s.run == plan.run_tag && s.producer == id => {
                r.tracker
                    .record(s.seq, f.headers.get("redelivered") == Some("true"));
            }
            _ => r.foreign += 1,
        }
    }
    Ok(())
}

struct ResponderReport {
    served: u64,
    server: Option<String>,
    error: Option<BenchError>,
}

async fn respond(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    ready: oneshot::Sender<()>,
) -> ResponderReport {
    let mut r = ResponderReport {
        served: 0,
        server: None,
        error: None,
    };
    if let Err(e) = responder_loop(&plan, &shared, ready, &mut r).await {
        // Requesters would wait for replies that never come: end the run.
        shared.stop.cancel();
        r.error = Some(e);
    }
    r
}

async fn responder_loop(
    plan: &Plan,
    shared: &Shared,
    ready: oneshot::Sender<()>,
    r: &mut ResponderReport,
) -> Result<(), BenchError> {
    let mut conn = Conn::connect(&plan.connect).await?;
    r.server = conn.server.clone();
    let early = conn
        .subscribe(&plan.destination, plan.ack.as_str(), plan.prefetch)
        .await?;
    let _ = ready.send(());
    for f in early {
        answer(plan, &mut conn, &f, r)?;
    }
    loop {
        while let Some(f) = conn.buffered_frame()? {
            match f.command {
                Command::Message => answer(plan, &mut conn, &f, r)?,
                Command::Error => return Err(broker_error(&f)),
                _ => {}
            }
        }
        conn.flush().await?;
        tokio::select! {
            biased;
            res = conn.fill() => res?,
            _ = shared.stop.cancelled() => break,
        }
    }
    conn.disconnect(GOODBYE, |_| {}).await
}

/// Sends a request's body back to its `reply-to` and acknowledges the request per the ack mode.
fn answer(
    plan: &Plan,
    conn: &mut Conn,
    f: &Frame,
    r: &mut ResponderReport,
) -> Result<(), BenchError> {
    let Some(reply_to) = f.headers.get("reply-to") else {
        return Err(BenchError::Unexpected {
            got: "MESSAGE without reply-to".into(),
            wanted: "a request with a reply-to header",
        });
    };
    let mut reply = Frame::new(Command::Send).header("destination", reply_to);
    if let Some(p) = plan.persistent {
        reply = reply.header("persistent", p);
    }
    conn.send(&reply.body(f.body.clone()));
    if plan.ack != AckMode::Auto {
        let version = conn.version();
        let id = match version {
            Version::V1_2 => f.headers.get("ack"),
            _ => None,
        }
        .or_else(|| f.headers.get("message-id"))
        .unwrap_or_default()
        .to_owned();
        if version == Version::V1_2 {
            put_bare(&mut conn.wbuf, version, Command::Ack, &[("id", &id)]);
        } else {
            put_bare(
                &mut conn.wbuf,
                version,
                Command::Ack,
                &[("message-id", &id), ("subscription", "0")],
            );
        }
    }
    r.served += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_answered_once_is_clean() {
        let mut t = ReplyTracker::default();
        for _ in 0..5 {
            let s = t.next_request();
            assert_eq!(t.record(s, false), ReplyOutcome::Answer);
            assert!(t.is_answered(s));
        }
        let v = t.verdict();
        assert_eq!((v.expected, v.received), (5, 5));
        assert!(v.is_clean(), "{v:?}");
    }

    #[test]
    fn a_lost_reply_is_missing() {
        let mut t = ReplyTracker::default();
        for s in 0..3 {
            assert_eq!(t.next_request(), s);
        }
        t.record(0, false);
        t.record(2, false);
        let v = t.verdict();
        assert_eq!((v.missing, v.duplicates, v.unexpected), (1, 0, 0));
        assert!(!v.is_clean());
        assert!(!t.is_answered(1));
    }

    #[test]
    fn a_second_reply_is_a_duplicate_and_a_reply_to_nothing_is_unexpected() {
        let mut t = ReplyTracker::default();
        let s = t.next_request();
        assert_eq!(t.record(s, false), ReplyOutcome::Answer);
        assert_eq!(t.record(s, true), ReplyOutcome::Duplicate);
        assert_eq!(t.record(7, false), ReplyOutcome::Unexpected);
        let v = t.verdict();
        assert_eq!(
            (
                v.expected,
                v.received,
                v.missing,
                v.duplicates,
                v.unexpected
            ),
            (1, 3, 0, 1, 1)
        );
        assert_eq!(v.redelivered, 1);
        assert!(!v.is_clean());
    }

    #[test]
    fn verdicts_of_requesters_add_up() {
        let mut a = ReplyTracker::default();
        let mut b = ReplyTracker::default();
        for _ in 0..4 {
            let s = a.next_request();
            a.record(s, false);
        }
        b.next_request();
        let v = merge_verdicts([a.verdict(), b.verdict()]);
        assert_eq!((v.expected, v.received, v.missing), (5, 4, 1));
    }
}
