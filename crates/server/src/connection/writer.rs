//! The writing half of a connection. It drains the connection's queue of [`WriterItem`]s into its
//! sink, so a busy connection sends many frames per write; holds client-ack deliveries back until
//! the commit carrying their delivery counts is durable; sends a heart-beat EOL when it has been
//! quiet for the agreed interval; and reports the auto-ack deliveries it wrote to the broker, which
//! settles them. It never touches a queue or the store itself.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use stampede_broker::{AutoAck, Broker, ConsumerId, Delivery, Outbox, Ticket};
use stampede_proto::{encode_head, Command, Frame, Version};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::sink::FrameSink;

/// Stop adding frames to a write once this much is buffered.
const WRITE_BATCH: usize = 256 * 1024;

/// Replies (RECEIPT, ERROR) the reader may have queued but the writer not yet written. Deliveries
/// are bounded by subscription credit; this bounds the rest of the queue, so a client that sends
/// frames with receipts and never reads is stopped by TCP backpressure, not by our memory.
pub const MAX_UNWRITTEN_REPLIES: usize = 1024;

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

/// What the writer writes, in order.
#[derive(Debug)]
pub enum WriterItem {
    Delivery(Box<Delivery>),
    Reply(Box<Frame>),
    /// Answered once everything queued before it is written (and its auto-ack deliveries
    /// reported), so a subscription can be cancelled without requeueing what the client has.
    Barrier(oneshot::Sender<()>),
    /// The reader has cancelled this consumer and it is gone from its queue: no later item can be
    /// one of its deliveries, so the writer may stop skipping them.
    Forget(ConsumerId),
    /// Write what came before, then close the stream.
    Close,
}

/// The reader's end of the writer's queue: the [`Outbox`] the broker delivers into, the replies,
/// and the consumers being cancelled.
#[derive(Clone)]
pub struct WriterTx {
    tx: mpsc::UnboundedSender<WriterItem>,
    shared: Arc<Shared>,
}

/// What reader and writer share.
#[derive(Default)]
struct Shared {
    /// Consumers the reader is cancelling: their deliveries are not written (their queue takes
    /// them back), so a client never gets a message for a subscription it has cancelled.
    cancelled: Mutex<HashSet<ConsumerId>>,
    /// `cancelled.len()`, read without the lock for every delivery.
    cancelling: AtomicUsize,
    unwritten_replies: AtomicUsize,
    replies_written: Notify,
}

/// The writer's queue.
pub fn channel() -> (WriterTx, WriterRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    (
        WriterTx {
            tx,
            shared: shared.clone(),
        },
        WriterRx { rx, shared },
    )
}

pub struct WriterRx {
    rx: mpsc::UnboundedReceiver<WriterItem>,
    shared: Arc<Shared>,
}

impl Outbox for WriterTx {
    fn deliver(&self, delivery: Box<Delivery>) -> bool {
        self.tx.send(WriterItem::Delivery(delivery)).is_ok()
    }
}

impl WriterTx {
    /// Queues a reply; false once the writer is gone.
    pub fn reply(&self, frame: Frame) -> bool {
        let sent = self.tx.send(WriterItem::Reply(Box::new(frame))).is_ok();
        if sent {
            self.shared.unwritten_replies.fetch_add(1, Ordering::AcqRel);
        }
        sent
    }

    /// Waits while too many replies are unwritten.
    pub async fn room(&self) {
        loop {
            let written = self.shared.replies_written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.shared.unwritten_replies.load(Ordering::Acquire) < MAX_UNWRITTEN_REPLIES {
                return;
            }
            written.await;
        }
    }

    /// Stops writing `consumer`'s deliveries and waits until everything queued before is written.
    pub async fn cancel(&self, consumer: ConsumerId) {
        if self.shared.cancelled.lock().insert(consumer) {
            self.shared.cancelling.fetch_add(1, Ordering::AcqRel);
        }
        let (done, written) = oneshot::channel();
        if self.tx.send(WriterItem::Barrier(done)).is_ok() {
            let _ = written.await;
        }
    }

    /// After `consumer` has left its queue: see [`WriterItem::Forget`].
    pub fn forget(&self, consumer: ConsumerId) {
        if self.tx.send(WriterItem::Forget(consumer)).is_err() {
            self.shared.forget(consumer);
        }
    }

    /// Asks the writer to write what is queued and close.
    pub fn close(&self) {
        let _ = self.tx.send(WriterItem::Close);
    }
}

impl Shared {
    fn is_cancelled(&self, consumer: ConsumerId) -> bool {
        self.cancelling.load(Ordering::Acquire) > 0 && self.cancelled.lock().contains(&consumer)
    }

    fn forget(&self, consumer: ConsumerId) {
        if self.cancelled.lock().remove(&consumer) {
            self.cancelling.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn reply_written(&self) {
        let _ = self
            .unwritten_replies
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.replies_written.notify_waiters();
    }
}

/// What ends a writer.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterEnd {
    /// A `Close` was processed or the queue closed.
    Closed,
    /// The stream failed; the peer is gone.
    Failed,
}

/// The writer task's state.
pub struct Writer<S> {
    pub sink: S,
    /// Told which auto-ack deliveries were written.
    pub broker: Arc<Broker>,
    pub rx: WriterRx,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub version: Version,
    /// Send a heart-beat when nothing was written for this long; `None` = no heart-beats.
    pub heartbeat: Option<Duration>,
}

/// What one batch of items left to do around its write.
#[derive(Default)]
struct Batch {
    written: Vec<AutoAck>,
    barriers: Vec<oneshot::Sender<()>>,
    /// Commits whose durability deliveries in the batch wait on, each once.
    durable: Vec<Ticket>,
    close: bool,
}

impl<S: FrameSink> Writer<S> {
    pub async fn run(mut self) -> WriterEnd {
        let mut ids = String::new();
        loop {
            let deadline = self.heartbeat.map(|h| Instant::now() + h);
            let first = tokio::select! {
                biased;
                item = self.rx.rx.recv() => item,
                _ = sleep_opt(deadline) => {
                    self.sink.heartbeat();
                    if self.sink.flush(self.rx.rx.is_empty()).await.is_err() {
                        return WriterEnd::Failed;
                    }
                    continue;
                }
            };
            let Some(first) = first else {
                let _ = self.sink.flush(true).await;
                return WriterEnd::Closed;
            };
            let mut batch = Batch::default();
            self.take(first, &mut batch, &mut ids);
            while !batch.close && self.sink.buffered() < WRITE_BATCH {
                match self.rx.rx.try_recv() {
                    Ok(item) => self.take(item, &mut batch, &mut ids),
                    Err(_) => break,
                }
            }
            if batch.close {
                // Closing: the replies already queued (an ERROR, a last RECEIPT) still go out.
                while let Ok(item) = self.rx.rx.try_recv() {
                    if let WriterItem::Reply(_) = item {
                        self.take(item, &mut batch, &mut ids);
                    }
                }
            }
            // Client-ack deliveries go out only once their delivery counts are on disk.
            for ticket in batch.durable.drain(..) {
                let _ = ticket.await;
            }
            if self.sink.flush(self.rx.rx.is_empty()).await.is_err() {
                return WriterEnd::Failed;
            }
            self.broker.written(&mut batch.written);
            for barrier in batch.barriers.drain(..) {
                let _ = barrier.send(());
            }
            if batch.close {
                let _ = self.sink.shutdown().await;
                return WriterEnd::Closed;
            }
        }
    }

    fn take(&mut self, item: WriterItem, batch: &mut Batch, ids: &mut String) {
        match item {
            WriterItem::Reply(frame) => {
                self.metrics.frames_out.inc(frame.command);
                // Head and body apart, like a delivery, so the sink sees where the frame ends.
                let (head, body) = (self.sink.head(), &frame.body);
                encode_head(
                    frame.command,
                    frame.headers.iter(),
                    body.len(),
                    self.version,
                    head,
                );
                self.sink.end_frame(body);
                self.rx.shared.reply_written();
            }
            WriterItem::Delivery(mut d) => {
                if self.rx.shared.is_cancelled(d.consumer) {
                    return;
                }
                self.metrics.frames_out.inc(Command::Message);
                encode_delivery(&d, self.version, &mut self.sink, ids);
                if let Some(t) = d.durable.take() {
                    if !batch.durable.iter().any(|b| b.same_commit(&t)) {
                        batch.durable.push(t);
                    }
                }
                batch.written.extend(d.auto_ack.take());
            }
            WriterItem::Barrier(done) => batch.barriers.push(done),
            WriterItem::Forget(consumer) => self.rx.shared.forget(consumer),
            WriterItem::Close => batch.close = true,
        }
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Writes a MESSAGE frame straight from the stored record; `ids` is scratch for the ids.
fn encode_delivery(d: &Delivery, version: Version, sink: &mut impl FrameSink, ids: &mut String) {
    ids.clear();
    stampede_broker::write_ids(ids, d.queue_number, d.seq, None);
    let message_id_end = ids.len();
    if d.client_ack {
        ids.push(' ');
        stampede_broker::write_ids(ids, d.queue_number, d.seq, Some(d.delivery_count));
    }
    let count = d.delivery_count.to_string();
    let mut fixed: Vec<(&str, &str)> = Vec::with_capacity(6);
    fixed.push(("subscription", &d.subscription));
    fixed.push(("message-id", &ids[..message_id_end]));
    fixed.push(("destination", &d.destination));
    if let (true, Version::V1_2) = (d.client_ack, version) {
        fixed.push(("ack", &ids[message_id_end + 1..]));
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
        sink.head(),
    );
    sink.end_frame(body);
}
