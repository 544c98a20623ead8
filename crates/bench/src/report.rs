//! What a run prints: the same [`Report`] as human-readable text or as JSON (`--json`), so the
//! peer-comparison script parses exactly what a person reads.

use std::fmt;

use serde::Serialize;

use crate::accounting::Verdict;
use crate::config::{Config, Stop};
use crate::reqrep::RequestReplyReport;
use crate::stats::{Percentiles, Rate};

/// The result of one invocation.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Report {
    /// Boxed: it is several times the size of an idle report.
    Load(Box<LoadReport>),
    Idle(IdleReport),
    RequestReply(Box<RequestReplyReport>),
    Handshakes(HandshakeReport),
}

impl Report {
    /// True when the run had no errors and, for load runs, lost or duplicated nothing.
    pub fn is_clean(&self) -> bool {
        match self {
            Report::Load(r) => {
                r.errors.is_empty() && r.accounting.as_ref().is_none_or(Verdict::is_clean)
            }
            Report::Idle(r) => r.failed == 0,
            Report::RequestReply(r) => r.errors.is_empty() && r.accounting.is_clean(),
            Report::Handshakes(r) => r.failed == 0 && r.completed > 0,
        }
    }
}

/// The flags that define a load scenario, echoed so a JSON result stands on its own.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub producers: u16,
    pub consumers: u16,
    pub size: usize,
    pub ack: String,
    pub prefetch: Option<u32>,
    /// The `persistent` header sent: true, false, or null when left out.
    pub persistent: Option<bool>,
    pub receipt_every: u64,
    /// Unconfirmed messages allowed per producer; absent without receipts.
    pub window: Option<u64>,
    pub tx: u64,
    pub rate: Option<f64>,
    pub messages_per_producer: Option<u64>,
    pub duration: Option<f64>,
    pub warmup: f64,
    pub drain: bool,
}

impl Scenario {
    pub fn of(c: &Config) -> Scenario {
        let (messages_per_producer, duration) = match c.stop() {
            Stop::Count(n) => (Some(n), None),
            Stop::After(d) => (None, Some(d.as_secs_f64())),
        };
        Scenario {
            producers: c.producers,
            consumers: c.consumers,
            size: c.size,
            ack: stampede_proto::AckMode::from(c.ack).as_str().to_owned(),
            prefetch: c.prefetch,
            persistent: c.persistent_header().map(|p| p == "true"),
            receipt_every: c.receipt_every,
            window: (c.window() != u64::MAX).then(|| c.window()),
            tx: c.tx,
            rate: c.rate,
            messages_per_producer,
            duration,
            warmup: c.warmup,
            drain: c.drain,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The CONNECTED `server` header.
    pub broker: Option<String>,
    pub url: String,
    pub destination: String,
    pub scenario: Scenario,
    /// Until the broker confirmed the last message (DISCONNECT receipt).
    pub producer: Rate,
    /// From the producers' start (or the drain's) to the last message received.
    pub consumer: Option<Rate>,
    /// End to end: stamp in the producer → arrival at the consumer.
    pub latency_us: Option<Percentiles>,
    /// Sent → RECEIPT, for receipted frames.
    pub receipt_latency_us: Option<Percentiles>,
    /// Absent when nobody consumed.
    pub accounting: Option<Verdict>,
    /// Messages of another run found on the destination; ignored by the accounting.
    pub foreign: u64,
    /// Bodies without a stamp.
    pub malformed: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub broker: Option<String>,
    pub url: String,
    pub requested: u32,
    /// Answered CONNECTED.
    pub connected: u32,
    pub failed: u32,
    /// Still open (no close, no unsolicited frame) after the hold.
    pub still_open: u32,
    pub held_seconds: f64,
    /// TCP connect → CONNECTED.
    pub connect_latency_us: Option<Percentiles>,
    /// Distinct failure reasons with their counts.
    pub errors: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Load(r) => r.fmt(f),
            Report::Idle(r) => r.fmt(f),
            Report::RequestReply(r) => r.fmt(f),
            Report::Handshakes(r) => r.fmt(f),
        }
    }
}

fn rate_line(f: &mut fmt::Formatter<'_>, what: &str, r: &Rate) -> fmt::Result {
    writeln!(
        f,
        "  {what:<9} {:>10} msgs in {:>8.3} s  {:>11.0} msg/s  {:>9.2} MB/s",
        r.messages, r.seconds, r.msgs_per_sec, r.mb_per_sec
    )
}

fn latency_line(f: &mut fmt::Formatter<'_>, what: &str, p: &Percentiles) -> fmt::Result {
    writeln!(
        f,
        "  {what:<9} µs  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (n={})",
        p.p50, p.p90, p.p99, p.p999, p.max, p.count
    )
}

/// The connect-latency line and the errors that end a connection report.
fn connect_tail(
    f: &mut fmt::Formatter<'_>,
    p: Option<&Percentiles>,
    errors: &[String],
) -> fmt::Result {
    if let Some(p) = p {
        latency_line(f, "connect", p)?;
    }
    for e in errors {
        writeln!(f, "  error: {e}")?;
    }
    Ok(())
}

/// How a report names the `persistent` header it sent.
fn persistence(header: Option<bool>) -> &'static str {
    match header {
        Some(true) => "persistent",
        Some(false) => "non-persistent",
        None => "no persistent header",
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scenario;
        writeln!(
            f,
            "{} ({}) {}  {}P/{}C  {} B  ack={}{}  {}  receipt-every={}{}{}",
            self.url,
            self.broker.as_deref().unwrap_or("unknown broker"),
            self.destination,
            s.producers,
            s.consumers,
            s.size,
            s.ack,
            s.prefetch
                .map(|p| format!(" prefetch={p}"))
                .unwrap_or_default(),
            persistence(s.persistent),
            s.receipt_every,
            if s.tx > 0 {
                format!(" tx={}", s.tx)
            } else {
                String::new()
            },
            s.rate.map(|r| format!(" rate={r}/s")).unwrap_or_default(),
        )?;
        rate_line(f, "produced", &self.producer)?;
        if let Some(c) = &self.consumer {
            rate_line(f, "consumed", c)?;
        }
        if let Some(p) = &self.latency_us {
            latency_line(f, "latency", p)?;
        }
        if let Some(p) = &self.receipt_latency_us {
            latency_line(f, "receipt", p)?;
        }
        if let Some(v) = &self.accounting {
            writeln!(
                f,
                "  accounting expected {}  received {}  missing {}  duplicates {}  redelivered {}  unexpected {}{}",
                v.expected, v.received, v.missing, v.duplicates, v.redelivered, v.unexpected,
                if self.foreign + self.malformed > 0 {
                    format!("  (ignored: {} from other runs, {} unstamped)", self.foreign, self.malformed)
                } else {
                    String::new()
                }
            )?;
        }
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        Ok(())
    }
}

/// `--handshakes`: connections opened and closed in turn.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeReport {
    pub broker: Option<String>,
    pub url: String,
    pub tls: bool,
    pub connectors: u16,
    /// Connections that went through CONNECTED and the DISCONNECT receipt.
    pub completed: u64,
    pub failed: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// TCP connect → CONNECTED (TLS handshake included).
    pub connect_latency_us: Option<Percentiles>,
    pub errors: Vec<String>,
}

impl fmt::Display for HandshakeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}) {} connections: {} connector(s)  {} completed  {} failed in {:.3} s  {:.0} /s",
            self.url,
            self.broker.as_deref().unwrap_or("unknown broker"),
            if self.tls { "TLS" } else { "plain" },
            self.connectors,
            self.completed,
            self.failed,
            self.seconds,
            self.per_second
        )?;
        connect_tail(f, self.connect_latency_us.as_ref(), &self.errors)
    }
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}) idle connections: requested {}  connected {}  failed {}  still open after {:.1} s: {}",
            self.url,
            self.broker.as_deref().unwrap_or("unknown broker"),
            self.requested,
            self.connected,
            self.failed,
            self.held_seconds,
            self.still_open
        )?;
        connect_tail(f, self.connect_latency_us.as_ref(), &self.errors)
    }
}

impl fmt::Display for RequestReplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}) {}  request/reply  {} requester(s) / {} responder(s)  {} B  {}",
            self.url,
            self.broker.as_deref().unwrap_or("unknown broker"),
            self.destination,
            self.requesters,
            self.responders,
            self.size,
            persistence(self.persistent),
        )?;
        let r = &self.round_trips;
        writeln!(
            f,
            "  round trips {:>8} in {:>8.3} s  {:>11.0} /s   (responders served {})",
            r.messages, r.seconds, r.msgs_per_sec, self.served
        )?;
        if let Some(p) = &self.round_trip_us {
            latency_line(f, "rtt", p)?;
        }
        let v = &self.accounting;
        writeln!(
            f,
            "  accounting requests {}  replies {}  missing {}  duplicates {}  redelivered {}  unexpected {}{}",
            v.expected, v.received, v.missing, v.duplicates, v.redelivered, v.unexpected,
            if self.foreign > 0 {
                format!("  (ignored: {} foreign)", self.foreign)
            } else {
                String::new()
            }
        )?;
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        Ok(())
    }
}
