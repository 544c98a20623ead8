//! One producer connection: sends stamped messages as fast as allowed (or on a fixed schedule),
//! optionally in transactions, with a RECEIPT every K units and a bounded window of unconfirmed
//! messages, then DISCONNECTs with a receipt so its last message is known to have arrived.
//!
//! The SEND head is encoded once and copied per message, and frames are coalesced into one write
//! buffer, so the tool costs the broker's CPU as little as possible on a shared 2-core machine.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use hdrhistogram::Histogram;
use stampede_proto::{encode_head, Command, Frame};

use crate::conn::{broker_error, Conn};
use crate::payload::{Stamp, STAMP_LEN};
use crate::progress::Shared;
use crate::stats::{histogram, ns_since};
use crate::{BenchError, Plan, Stop};

/// Write-buffer size that triggers a flush: big enough to amortise the syscall over hundreds of
/// small frames, small enough that the first frame in it is not held back long.
const FLUSH_AT: usize = 16 * 1024;

/// What one producer did.
#[derive(Debug)]
pub struct ProducerReport {
    /// Messages written in complete units up to the last successful write.
    pub sent: u64,
    /// Messages (and body bytes) sent after the warm-up.
    pub measured: u64,
    pub measured_bytes: u64,
    /// Start of the measured interval: connected, or the end of the warm-up if later.
    pub started: Instant,
    /// The broker confirmed everything (DISCONNECT receipt).
    pub finished: Instant,
    /// Send → RECEIPT latency of the receipted frames.
    pub receipts: Histogram<u64>,
    pub server: Option<String>,
    pub error: Option<BenchError>,
}

/// Receipts asked for and not yet answered. A connection's frames are processed in order, so
/// receipts come back in order and one answer confirms everything sent before its frame.
struct Receipts {
    /// (receipt id, send time ns, messages sent up to and including that frame)
    pending: VecDeque<(u64, u64, u64)>,
    next_id: u64,
    confirmed: u64,
    latency: Histogram<u64>,
}

impl Receipts {
    fn in_flight(&self, sent: u64) -> u64 {
        sent - self.confirmed
    }

    fn confirm(&mut self, f: &Frame, now_ns: u64) -> Result<(), BenchError> {
        let id = f
            .headers
            .get("receipt-id")
            .and_then(|v| v.parse::<u64>().ok());
        let Some(id) = id.filter(|id| self.pending.iter().any(|p| p.0 == *id)) else {
            return Err(BenchError::Unexpected {
                got: format!("RECEIPT {:?}", f.headers.get("receipt-id")),
                wanted: "a RECEIPT this producer asked for",
            });
        };
        while let Some(&(pid, sent_ns, upto)) = self.pending.front() {
            if pid > id {
                break;
            }
            self.pending.pop_front();
            if pid == id {
                self.latency
                    .saturating_record(now_ns.saturating_sub(sent_ns).max(1));
                self.confirmed = upto;
            }
        }
        Ok(())
    }
}

struct Producer {
    id: u16,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    go: Instant,
    /// "SEND\ndestination:..\n[persistent:..\n]content-length:N\n": everything but the
    /// per-message headers, the blank line and the body.
    head: BytesMut,
    padding: Vec<u8>,
    units: u64,
    /// Messages encoded so far; `written` is how many of them reached the socket.
    encoded: u64,
    written: u64,
    measured: u64,
    receipts: Receipts,
    started: Instant,
    server: Option<String>,
}

/// Runs producer `id` from `go` until its count or duration is done.
pub async fn produce(id: u16, plan: Arc<Plan>, shared: Arc<Shared>, go: Instant) -> ProducerReport {
    let mut p = Producer {
        id,
        padding: vec![b'x'; plan.size - STAMP_LEN],
        plan,
        shared,
        go,
        head: BytesMut::new(),
        units: 0,
        encoded: 0,
        written: 0,
        measured: 0,
        receipts: Receipts {
            pending: VecDeque::new(),
            next_id: 0,
            confirmed: 0,
            latency: histogram(),
        },
        started: go,
        server: None,
    };
    let error = p.run().await.err();
    let size = p.plan.size as u64;
    ProducerReport {
        sent: p.written,
        measured: p.measured,
        measured_bytes: p.measured * size,
        started: p.started,
        finished: Instant::now(),
        receipts: p.receipts.latency,
        server: p.server,
        error,
    }
}

impl Producer {
    async fn run(&mut self) -> Result<(), BenchError> {
        let plan = self.plan.clone();
        let mut conn = Conn::connect(&plan.connect).await?;
        self.server = conn.server.clone();
        self.head = send_head(&plan, &conn);
        self.started = Instant::now().max(self.go + plan.warmup);
        let (limit, deadline) = match plan.stop {
            Stop::Count(n) => (n, None),
            Stop::After(d) => (u64::MAX, Some(self.go + d)),
        };
        let unit = plan.tx.max(1);
        while self.encoded < limit {
            let len = unit.min(limit - self.encoded);
            while self.receipts.in_flight(self.encoded) + len > plan.window {
                self.flush(&mut conn).await?;
                let f = conn.next_frame("RECEIPT").await?;
                self.on_frame(&f)?;
            }
            // Taken after the window had room: a closed-loop message's latency starts when it
            // could be sent, not while the previous one was still waiting for its receipt.
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            let mut stamp_at = now;
            if let Some(rate) = plan.rate_per_producer {
                // Open loop: the schedule, not the broker, decides when a message is due, and its
                // latency counts from then (no coordinated omission).
                let due = self.go + Duration::from_secs_f64(self.encoded as f64 / rate);
                if deadline.is_some_and(|d| due >= d) {
                    break;
                }
                if due > now {
                    self.flush(&mut conn).await?;
                    if let Some(pacer) = &plan.pacer {
                        pacer.wait_until(due).await;
                    }
                }
                stamp_at = due;
            }
            self.write_unit(&mut conn.wbuf, len, ns_since(plan.epoch, stamp_at));
            if conn.wbuf.len() >= FLUSH_AT {
                self.flush(&mut conn).await?;
                while conn.try_fill()? {}
                while let Some(f) = conn.buffered_frame()? {
                    self.on_frame(&f)?;
                }
            }
        }
        self.flush(&mut conn).await?;
        while !self.receipts.pending.is_empty() {
            let f = conn.next_frame("RECEIPT").await?;
            self.on_frame(&f)?;
        }
        conn.disconnect(plan.connect.timeout, |_| {}).await
    }

    async fn flush(&mut self, conn: &mut Conn) -> Result<(), BenchError> {
        conn.flush().await?;
        self.shared.sent.add(self.encoded - self.written);
        self.written = self.encoded;
        Ok(())
    }

    fn on_frame(&mut self, f: &Frame) -> Result<(), BenchError> {
        match f.command {
            Command::Receipt => self
                .receipts
                .confirm(f, ns_since(self.plan.epoch, Instant::now())),
            Command::Error => Err(broker_error(f)),
            _ => Ok(()),
        }
    }

    /// Appends one unit: a SEND, or BEGIN + `len` SENDs + COMMIT. The receipt, when this unit is
    /// due one, rides on the SEND or on the COMMIT (the point where a transaction is durable).
    fn write_unit(&mut self, dst: &mut BytesMut, len: u64, sent_ns: u64) {
        let plan = &*self.plan;
        self.units += 1;
        let receipt = (plan.receipt_every > 0 && self.units.is_multiple_of(plan.receipt_every))
            .then(|| {
                let id = self.receipts.next_id;
                self.receipts.next_id += 1;
                self.receipts
                    .pending
                    .push_back((id, sent_ns, self.encoded + len));
                id
            });
        let tx = (plan.tx > 0).then_some(self.units);
        if let Some(t) = tx {
            let _ = write!(dst, "BEGIN\ntransaction:t{t}\n\n\0");
        }
        let warm = sent_ns >= self.shared.measure_from();
        for _ in 0..len {
            dst.extend_from_slice(&self.head);
            if let Some(t) = tx {
                let _ = writeln!(dst, "transaction:t{t}");
            } else if let Some(r) = receipt {
                let _ = writeln!(dst, "receipt:{r}");
            }
            dst.put_u8(b'\n');
            let mut stamp = [0u8; STAMP_LEN];
            Stamp {
                run: plan.run_tag,
                producer: self.id,
                seq: self.encoded,
                sent_ns,
            }
            .write(&mut stamp);
            dst.extend_from_slice(&stamp);
            dst.extend_from_slice(&self.padding);
            dst.put_u8(0);
            self.encoded += 1;
            self.measured += u64::from(warm);
        }
        if let Some(t) = tx {
            let _ = writeln!(dst, "COMMIT\ntransaction:t{t}");
            if let Some(r) = receipt {
                let _ = writeln!(dst, "receipt:{r}");
            }
            dst.extend_from_slice(b"\n\0");
        }
    }
}

/// The constant part of every SEND head, encoded (and escaped) once through the codec.
fn send_head(plan: &Plan, conn: &Conn) -> BytesMut {
    let mut headers = vec![("destination", plan.destination.as_str())];
    if let Some(p) = plan.persistent {
        headers.push(("persistent", p));
    }
    let mut head = BytesMut::new();
    encode_head(
        Command::Send,
        headers.into_iter(),
        plan.size,
        conn.version(),
        &mut head,
    );
    // Drop the blank line that ends the head: per-message headers go before it.
    head.truncate(head.len() - 1);
    head
}
