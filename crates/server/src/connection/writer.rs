//! The writing half of a connection. It drains the outbox into one buffer per write, so a busy
//! connection sends many frames per syscall, sends heart-beat EOLs when it has been quiet for the
//! agreed interval, and settles auto-ack deliveries once they are on the socket.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use std::sync::Arc;

use stampede_broker::{AutoSettle, Broker, ConsumerId, Delivery, DurableGate, Effects, Outgoing};
use tokio::sync::oneshot;

/// Shared between a connection's reader (which cancels) and its writer (which skips).
pub type Cancelled = Arc<parking_lot::Mutex<std::collections::HashSet<ConsumerId>>>;

/// Replies (RECEIPT, ERROR) the reader may have queued but the writer not yet written. Deliveries
/// are bounded by subscription credit; this bounds the rest of the outbox, so a client that sends
/// frames with receipts and never reads is stopped by TCP backpressure, not by our memory.
pub const MAX_UNWRITTEN_REPLIES: usize = 1024;

/// Counts replies between the reader and the writer.
#[derive(Default)]
pub struct Replies {
    unwritten: std::sync::atomic::AtomicUsize,
    written: tokio::sync::Notify,
}

impl Replies {
    pub fn queued(&self) {
        self.unwritten
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn written(&self) {
        let _ = self.unwritten.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |n| n.checked_sub(1),
        );
        self.written.notify_waiters();
    }

    /// Waits while too many replies are unwritten.
    pub async fn room(&self) {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.unwritten.load(std::sync::atomic::Ordering::Acquire) < MAX_UNWRITTEN_REPLIES {
                return;
            }
            written.await;
        }
    }
}
use stampede_proto::{encode, encode_head, Command, Version};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Stop adding frames to a write once the buffer holds this much.
const WRITE_BATCH: usize = 256 * 1024;

/// Headers the broker sets on MESSAGE frames; a producer's copies of them are not forwarded.
const RESERVED: &[&str] = &[
    "subscription",
    "message-id",
    "destination",
    "ack",
    "redelivered",
    "delivery-count",
    "content-length",
];

/// Commands sent to the writer besides broker output.
#[derive(Debug)]
pub enum Control {
    /// Write this and everything before it, then close the socket.
    Close,
}

/// What ends a writer.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterEnd {
    /// A `Close` was processed or the outbox closed.
    Closed,
    /// The socket failed; the peer is gone.
    Failed,
}

pub struct Writer<W> {
    pub socket: W,
    /// Applies the effects of settling auto-ack deliveries.
    pub broker: Arc<Broker>,
    pub outbox: mpsc::UnboundedReceiver<Outgoing>,
    pub control: mpsc::UnboundedReceiver<Control>,
    /// Consumers the connection is cancelling: their deliveries are not written (the queue takes
    /// them back), so a client never gets a message for a subscription it has cancelled.
    pub cancelled: Cancelled,
    pub replies: Arc<Replies>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub version: Version,
    /// Send a heart-beat when nothing was written for this long; `None` = no heart-beats.
    pub heartbeat: Option<Duration>,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub async fn run(mut self) -> WriterEnd {
        let mut buf = BytesMut::new();
        let mut settles: Vec<AutoSettle> = Vec::new();
        let mut barriers: Vec<oneshot::Sender<()>> = Vec::new();
        let mut gates: Vec<Arc<DurableGate>> = Vec::new();
        let mut closing = false;
        loop {
            let deadline = self.heartbeat.map(|h| Instant::now() + h);
            let first = tokio::select! {
                biased;
                item = self.outbox.recv() => item,
                Some(Control::Close) = self.control.recv() => { closing = true; None }
                _ = sleep_opt(deadline) => {
                    buf.put_u8(b'\n');
                    if self.flush(&mut buf).await.is_err() {
                        return WriterEnd::Failed;
                    }
                    continue;
                }
            };
            match first {
                Some(item) => self.encode(item, &mut buf, &mut settles, &mut barriers, &mut gates),
                None if closing => {
                    // Close is sent after the final frames, so take what the outbox already holds.
                    while let Ok(item) = self.outbox.try_recv() {
                        if let Outgoing::Frame(_) = item {
                            self.encode(item, &mut buf, &mut settles, &mut barriers, &mut gates);
                        }
                    }
                    let _ = self.flush(&mut buf).await;
                    let _ = self.socket.shutdown().await;
                    return WriterEnd::Closed;
                }
                None => {
                    let _ = self.flush(&mut buf).await;
                    return WriterEnd::Closed;
                }
            }
            while buf.len() < WRITE_BATCH {
                match self.outbox.try_recv() {
                    Ok(item) => {
                        self.encode(item, &mut buf, &mut settles, &mut barriers, &mut gates)
                    }
                    Err(_) => break,
                }
            }
            // Client-ack deliveries go out only once their delivery counts are on disk.
            for gate in gates.drain(..) {
                gate.wait().await;
            }
            if self.flush(&mut buf).await.is_err() {
                return WriterEnd::Failed;
            }
            settle(&self.broker, &mut settles);
            for barrier in barriers.drain(..) {
                let _ = barrier.send(());
            }
        }
    }

    fn encode(
        &self,
        item: Outgoing,
        buf: &mut BytesMut,
        settles: &mut Vec<AutoSettle>,
        barriers: &mut Vec<oneshot::Sender<()>>,
        gates: &mut Vec<Arc<DurableGate>>,
    ) {
        match item {
            Outgoing::Frame(frame) => {
                self.metrics.frames_out.inc(frame.command);
                encode(&frame, self.version, buf);
                self.replies.written();
            }
            Outgoing::Message(d) => {
                if self.cancelled.lock().contains(&d.consumer) {
                    return;
                }
                self.metrics.frames_out.inc(Command::Message);
                encode_delivery(&d, self.version, buf);
                if let Some(gate) = d.durable {
                    if !gates.iter().any(|g| Arc::ptr_eq(g, &gate)) {
                        gates.push(gate);
                    }
                }
                if let Some(s) = d.auto_settle {
                    settles.push(s);
                }
            }
            Outgoing::Barrier(done) => barriers.push(done),
        }
    }

    async fn flush(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let res = self.socket.write_all(buf).await;
        if self.outbox.is_empty() {
            // Going idle: most connections are, and a write buffer each would be most of their
            // memory. A busy writer keeps its buffer from one write to the next.
            *buf = BytesMut::new();
        } else {
            buf.clear();
        }
        res
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Settles written auto-ack deliveries, one queue call per run of the same queue and consumer.
fn settle(broker: &Broker, settles: &mut Vec<AutoSettle>) {
    if settles.is_empty() {
        return;
    }
    let mut fx = Effects::new();
    let mut seqs = Vec::new();
    let mut iter = settles.drain(..).peekable();
    while let Some(s) = iter.next() {
        seqs.clear();
        seqs.push(s.seq);
        while let Some(next) =
            iter.next_if(|n| std::sync::Arc::ptr_eq(&n.queue, &s.queue) && n.consumer == s.consumer)
        {
            seqs.push(next.seq);
        }
        s.queue.settle_written(s.consumer, &seqs, &mut fx);
    }
    // Auto-ack deletes need no waiting: nobody is owed a receipt for them.
    drop(broker.apply(fx));
}

/// Writes a MESSAGE frame straight from the stored record.
fn encode_delivery(d: &Delivery, version: Version, buf: &mut BytesMut) {
    let count = d.delivery_count.to_string();
    let mut fixed: Vec<(&str, &str)> = Vec::with_capacity(6);
    fixed.push(("subscription", &d.subscription));
    fixed.push(("message-id", &d.message_id));
    fixed.push(("destination", &d.destination));
    if let (Some(ack), Version::V1_2) = (&d.ack_id, version) {
        fixed.push(("ack", ack));
    }
    if d.redelivered() {
        fixed.push(("redelivered", "true"));
    }
    fixed.push(("delivery-count", &count));
    let rest = d
        .record
        .headers
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let body = &d.record.body;
    encode_head(
        Command::Message,
        fixed.into_iter().chain(rest),
        body.len(),
        version,
        buf,
    );
    buf.extend_from_slice(body);
    buf.put_u8(0);
}
