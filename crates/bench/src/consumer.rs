//! One consumer connection: subscribes (with a receipt, so producers start only once it is in
//! place), reads everything the socket has per wake-up, stamps each MESSAGE's end-to-end latency
//! and records it in its own [`Tracker`], and acknowledges per the ack mode with one write per
//! read batch. It stops when the run's messages are all in, or after the drain timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use stampede_proto::{AckMode, Command, Frame, Version};
use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;

use crate::accounting::{Delivery, Tracker};
use crate::conn::{broker_error, put_bare, Conn, Inbound};
use crate::payload::Stamp;
use crate::progress::Shared;
use crate::scan::text;
use crate::stats::{histogram, ns_since};
use crate::{BenchError, Plan};

/// How long the closing DISCONNECT may wait for its receipt.
const GOODBYE: Duration = Duration::from_secs(5);

/// What one consumer received.
#[derive(Debug)]
pub struct ConsumerReport {
    pub tracker: Tracker,
    /// End-to-end latency (stamp → arrival) of messages sent after the warm-up.
    pub latency: Histogram<u64>,
    pub measured: u64,
    pub measured_bytes: u64,
    pub last_measured: Option<Instant>,
    /// Messages of another run (leftovers on a reused destination), and bodies without a stamp.
    pub foreign: u64,
    pub malformed: u64,
    pub server: Option<String>,
    pub error: Option<BenchError>,
}

struct Consumer {
    /// Its number among the run's consumers (`{i}` of `--consumer-destination`).
    index: u16,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    report: ConsumerReport,
    /// Deliveries of this run not yet added to the shared counter.
    unreported: u64,
    /// `client` mode: deliveries since the last cumulative ACK, and the ack id of the newest.
    unacked: u64,
    last_ack_id: String,
}

/// Runs one consumer; `ready` fires once its subscription is confirmed.
pub async fn consume(
    index: u16,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    ready: oneshot::Sender<()>,
) -> ConsumerReport {
    let mut c = Consumer {
        index,
        plan,
        shared,
        report: ConsumerReport {
            tracker: Tracker::default(),
            latency: histogram(),
            measured: 0,
            measured_bytes: 0,
            last_measured: None,
            foreign: 0,
            malformed: 0,
            server: None,
            error: None,
        },
        unreported: 0,
        unacked: 0,
        last_ack_id: String::new(),
    };
    if let Err(e) = c.run(ready).await {
        c.report.error = Some(e);
    }
    // What a failed consumer received still counts toward a queue's total.
    c.shared.received.add(c.unreported);
    c.report
}

impl Consumer {
    async fn run(&mut self, ready: oneshot::Sender<()>) -> Result<(), BenchError> {
        let plan = self.plan.clone();
        let mut conn = Conn::connect(&plan.connect).await?;
        self.report.server = conn.server.clone();
        let (destination, headers) = plan.subscription(self.index);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let early = conn
            .subscribe_as(
                &destination,
                "0",
                plan.ack.as_str(),
                plan.prefetch,
                &headers,
                true,
            )
            .await?;
        for f in &early {
            self.on_message(f, &mut conn, Instant::now());
        }
        let _ = ready.send(());
        self.receive(&mut conn).await?;
        if self.unacked > 0 {
            let version = conn.version();
            self.ack_cumulative(&mut conn.wbuf, version);
        }
        conn.flush().await?;
        // Late frames are still counted (a surplus delivery is a duplicate), but no longer acked:
        // nothing may follow a DISCONNECT.
        let mut late = Vec::new();
        conn.disconnect(GOODBYE, |f| late.push(f)).await?;
        let now = Instant::now();
        for f in late.iter().filter(|f| f.command == Command::Message) {
            self.record(&f.body, f.headers.get("redelivered") == Some("true"), now);
        }
        Ok(())
    }

    /// The read loop: one decode pass and one write per wake-up.
    async fn receive(&mut self, conn: &mut Conn) -> Result<(), BenchError> {
        let drain_timeout = self.plan.drain_timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut idle_since = Instant::now();
        let mut saw_producers_done = false;
        loop {
            let mut batch = 0u64;
            // One clock read per read batch: its frames all arrived with the same read.
            let now = Instant::now();
            while let Some(item) = conn.next_inbound()? {
                match item {
                    Inbound::Message(m) => {
                        let version = conn.version();
                        let buf = &conn.rbuf;
                        self.record(&buf[m.body.clone()], m.redelivered, now);
                        let id = match version {
                            Version::V1_2 => m.ack.as_ref(),
                            _ => None,
                        };
                        if let Some(id) = id.or(m.message_id.as_ref()) {
                            self.on_ack_id(&mut conn.wbuf, version, text(buf, id));
                        }
                        conn.consume(m.len);
                        batch += 1;
                    }
                    Inbound::Frame(f) => match f.command {
                        Command::Message => {
                            self.on_message(&f, conn, now);
                            batch += 1;
                        }
                        Command::Error => return Err(broker_error(&f)),
                        _ => {}
                    },
                }
            }
            // Also covers deliveries that raced ahead of the SUBSCRIBE receipt (a queue with a
            // backlog), which were recorded but not yet acked or counted.
            if self.unacked > 0 {
                let version = conn.version();
                self.ack_cumulative(&mut conn.wbuf, version);
            }
            conn.flush().await?;
            self.shared
                .received
                .add(std::mem::take(&mut self.unreported));
            if batch > 0 {
                idle_since = Instant::now();
            }
            if self.all_in() {
                return Ok(());
            }
            tokio::select! {
                biased;
                r = conn.fill() => r?,
                _ = self.shared.stop.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    // The drain clock starts when producers are done, not at the last message:
                    // a queue consumer may legitimately starve while the others are served.
                    if !saw_producers_done && self.shared.producers_done() {
                        saw_producers_done = true;
                        idle_since = idle_since.max(Instant::now());
                    }
                    if saw_producers_done && idle_since.elapsed() >= drain_timeout {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Whether this consumer has seen all it should: every message for a topic subscriber; for a
    /// queue, the consumers' joint total (and then it tells the others to stop too).
    fn all_in(&self) -> bool {
        let expected = self.shared.expected();
        match self.plan.delivery {
            Delivery::EveryConsumer => self.report.tracker.received >= expected,
            Delivery::ExactlyOnce => {
                let done = self.shared.received.get() >= expected;
                if done {
                    self.shared.stop.cancel();
                }
                done
            }
        }
    }

    /// A MESSAGE that took the full decoder's path (the subscribe wait, unusual headers).
    fn on_message(&mut self, f: &Frame, conn: &mut Conn, now: Instant) {
        let redelivered = f.headers.get("redelivered") == Some("true");
        self.record(&f.body, redelivered, now);
        let id = match conn.version() {
            Version::V1_2 => f.headers.get("ack"),
            _ => None,
        };
        if let Some(id) = id.or_else(|| f.headers.get("message-id")) {
            let version = conn.version();
            self.on_ack_id(&mut conn.wbuf, version, id);
        }
    }

    fn record(&mut self, body: &[u8], redelivered: bool, now: Instant) {
        match Stamp::read(body) {
            Some(s) if s.run == self.plan.run_tag => {
                self.report.tracker.record(s.producer, s.seq, redelivered);
                self.unreported += 1;
                if s.sent_ns >= self.shared.measure_from() {
                    let lat = ns_since(self.plan.epoch, now).saturating_sub(s.sent_ns);
                    self.report.latency.saturating_record(lat.max(1));
                    self.report.measured += 1;
                    self.report.measured_bytes += body.len() as u64;
                    self.report.last_measured = Some(now);
                }
            }
            Some(_) => self.report.foreign += 1,
            None => self.report.malformed += 1,
        }
    }

    /// Acknowledges a delivery per the ack mode: now (`client-individual`), or by remembering it
    /// for the next cumulative ACK (`client`).
    fn on_ack_id(&mut self, wbuf: &mut BytesMut, version: Version, id: &str) {
        match self.plan.ack {
            AckMode::Auto => {}
            AckMode::ClientIndividual => write_ack(wbuf, version, id),
            AckMode::Client => {
                self.unacked += 1;
                self.last_ack_id.clear();
                self.last_ack_id.push_str(id);
                if self.unacked >= self.plan.ack_every {
                    self.ack_cumulative(wbuf, version);
                }
            }
        }
    }

    /// `client` mode: one ACK for the newest delivery covers every earlier one.
    fn ack_cumulative(&mut self, wbuf: &mut BytesMut, version: Version) {
        write_ack(wbuf, version, &self.last_ack_id);
        self.unacked = 0;
    }
}

fn write_ack(wbuf: &mut BytesMut, version: Version, id: &str) {
    if version == Version::V1_2 {
        put_bare(wbuf, version, Command::Ack, &[("id", id)]);
    } else {
        put_bare(
            wbuf,
            version,
            Command::Ack,
            &[("message-id", id), ("subscription", "0")],
        );
    }
}
