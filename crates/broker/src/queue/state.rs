//! The data a queue's lock protects and the transitions between its states: ready → in flight →
//! settled, requeued or dead-lettered. Every transition records its store ops and dead letters in
//! the caller's [`Effects`].
//!
//! The collections that carry an index (`ready` with `expiring`, `inflight` with `deadlines`) are
//! private: they change only through the methods here, which keep both sides in step, and the
//! time-driven loops pop the index entry before they look up the message, so an index that ever
//! disagreed could not make them spin with the lock held.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use stampede_store::{MessageRecord, Op, QueueId};

use super::{ConsumerId, ConsumerSpec, NotInFlight};
use crate::effects::{DeadLetter, DeathReason, Effects};
use crate::policy::QueueSettings;

/// Tokens of expired deliveries remembered per consumer, so a late ACK is not taken for a bogus one.
const REMEMBERED_EXPIRIES: usize = 1024;

/// A message waiting or in flight.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub record: Arc<MessageRecord>,
    /// Deliveries so far; the next delivery is number `deliveries + 1`.
    pub deliveries: u32,
    /// A delivery count may be stored for it (so its delete must remove that too).
    pub counted: bool,
    /// The store holds it: settling it deletes it there, and its delivery counts are written.
    /// False for messages of transient queues and for non-persistent messages kept in memory.
    pub stored: bool,
}

impl Entry {
    /// A message read from the store.
    pub fn stored(record: Arc<MessageRecord>, deliveries: u32) -> Entry {
        Entry {
            record,
            deliveries,
            counted: deliveries > 0,
            stored: true,
        }
    }

    /// A new message; `stored` says whether its put was committed.
    pub fn new(record: Arc<MessageRecord>, stored: bool) -> Entry {
        Entry {
            record,
            deliveries: 0,
            counted: false,
            stored,
        }
    }

    pub fn size(&self) -> u64 {
        self.record.size() as u64
    }
}

/// How a delivered message comes back to its queue.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Back {
    /// Visible again at once: its consumer went away, through no fault of the message.
    AtOnce,
    /// Given back by a NACK or a visibility timeout at `now`: visible again after `wait`, or
    /// the queue's redelivery delay.
    Failed { now: u64, wait: Option<Duration> },
}

/// Who holds an in-flight message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A subscription; `dispatch_no` orders its deliveries for cumulative ACKs.
    Consumer { id: ConsumerId, dispatch_no: u64 },
    /// A pull consumer (GetMessages), identified only by the receipt it was handed.
    Pull,
}

#[derive(Debug)]
pub(crate) struct Inflight {
    pub entry: Entry,
    pub holder: Holder,
    /// Milliseconds since the epoch when the message becomes visible again, if ever.
    pub deadline: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Consumer {
    pub spec: ConsumerSpec,
    pub credit: u32,
    pub next_dispatch: u64,
    /// Unsettled deliveries in the order they were made: dispatch number → sequence number.
    pub unacked: BTreeMap<u64, u64>,
    /// Their bytes, for the byte window.
    pub unacked_bytes: u64,
    /// Messages taken back from this consumer by a visibility timeout, newest last.
    pub expired: VecDeque<u64>,
}

impl Consumer {
    /// Whether it may take one more message: credit left, and room in its byte window (a
    /// consumer holding nothing always has room, so a message larger than the window is not
    /// stuck).
    pub fn has_room(&self) -> bool {
        self.credit > 0
            && self
                .spec
                .window_bytes
                .is_none_or(|w| self.unacked.is_empty() || self.unacked_bytes < w)
    }
}

/// Waiting messages kept only in the store, beyond the in-memory window. Every one of them has a
/// higher sequence number than every waiting message in memory that a sequential read brought in,
/// so FIFO holds across the boundary. A channel's consumer that finds nothing of its channel in
/// memory has the store scanned ahead for that channel alone ([`Paged::scanned`]): those messages
/// join memory above the cursor, and sequential reads skip them when they pass.
#[derive(Debug, Default)]
pub(crate) struct Paged {
    pub count: u64,
    pub bytes: u64,
    /// Highest sequence number a sequential read reached; paged messages lie above it.
    pub cursor: u64,
    /// Highest sequence number ever counted as paged: no paged message lies above it.
    pub last: u64,
    /// Per channel, how far past `cursor` the store was scanned for it: every message of that
    /// channel up to there is in memory or gone. Kept only for channels that went without.
    pub scanned: HashMap<Arc<str>, u64>,
    /// Sequence numbers above `cursor` that a scan brought into memory (or that joined memory
    /// because their channel's scan had passed them), settled since or not: a read must never
    /// bring them in again, even one that was under way when they were settled.
    pub taken: BTreeSet<u64>,
    /// A read from the store is under way.
    pub reading: bool,
    /// When to try again after a read failed.
    pub retry_at: Option<u64>,
}

/// Capacity taken by messages admitted and not yet published, so that concurrent SENDs and the
/// SENDs of one transaction together cannot overfill a bounded queue.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reserved {
    pub messages: u64,
    pub bytes: u64,
}

/// Everything behind a queue's lock.
#[derive(Debug)]
pub(crate) struct State {
    ready: BTreeMap<u64, Entry>,
    /// The waiting messages in `ready` that belong to a channel, by channel, oldest first.
    /// Empty (and never consulted) in a queue without channels.
    by_channel: HashMap<Arc<str>, BTreeSet<u64>>,
    /// The queue can hold channel messages (an OCID queue): only then is a message looked at
    /// for its channel.
    channels: bool,
    /// (expires at, seq) of waiting messages that carry an `expires` time.
    expiring: BTreeSet<(u64, u64)>,
    /// Bytes of the messages in `ready`.
    ready_bytes: u64,
    inflight: HashMap<u64, Inflight>,
    /// (deadline, seq) of in-flight messages that have a visibility deadline.
    deadlines: BTreeSet<(u64, u64)>,
    /// Messages given back and waiting out their redelivery delay before they are visible
    /// again, by sequence number with their due time; `due` orders them. In memory only: they
    /// came from in flight (bounded by prefetch), and a restart makes them visible at once.
    delayed: HashMap<u64, (u64, Entry)>,
    due: BTreeSet<(u64, u64)>,
    pub consumers: Vec<Consumer>,
    /// Round-robin position among consumers.
    pub cursor: usize,
    /// Bytes of all messages in the queue, waiting or in flight.
    pub bytes: u64,
    pub paged: Paged,
    pub reserved: Reserved,
    /// The effective settings: the configuration's, then what was changed at run time. Shared
    /// between the queues whose settings are the same (most of them).
    pub settings: Arc<QueueSettings>,
    /// The queue's current id in the store; `None` for a transient queue, or once dropped. A
    /// purge moves the queue to a fresh id, so a message staged under the old one is known gone.
    pub store_id: Option<QueueId>,
    /// The queue was removed from the broker; nothing may attach to it or enter it.
    pub dropped: bool,
    /// The earliest deadline this queue has asked the broker's timer to wake it for.
    pub armed: Option<u64>,
    /// What its stored attributes hold besides its number (kept to write them again).
    pub created_at_ms: u64,
    /// Run-time setting changes and labels; boxed, since most queues have none.
    pub extras: Option<Box<Extras>>,
    /// Stored messages staged and not yet published: their puts may already be visible to a
    /// store read, which must leave them to their publication.
    pub unpublished: std::collections::HashSet<u64>,
    /// Pull consumers waiting for a message (long polls), oldest first, so they are served in
    /// the order they came.
    pub pull_waiters: VecDeque<PullWaiter>,
    /// Numbers the next pull waiter.
    pub next_waiter: u64,
}

/// A long poll waiting in its queue for a message.
#[derive(Debug)]
pub(crate) struct PullWaiter {
    pub id: u64,
    /// It takes only this channel's messages.
    pub channel: Option<Arc<str>>,
    /// Woken with `notify_one`, which keeps the wake-up for a waiter not polling yet.
    pub wake: Arc<tokio::sync::Notify>,
}

/// The rarely set parts of a queue's attributes, and who owns an exclusive queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    pub overrides: crate::meta::Overrides,
    pub labels: std::collections::BTreeMap<String, String>,
    pub auto_delete: bool,
    pub temporary: bool,
    /// The session an exclusive queue belongs to: nobody else may consume it.
    pub owner: Option<u64>,
}

/// What the state needs to know about its queue to record effects.
pub(crate) struct Ctx<'a> {
    pub name: &'a Arc<str>,
    /// Durable queues dead-letter; a transient one drops what it cannot deliver.
    pub durable: bool,
}

impl State {
    pub fn new(settings: Arc<QueueSettings>, store_id: Option<QueueId>, channels: bool) -> State {
        State {
            ready: BTreeMap::new(),
            delayed: HashMap::new(),
            due: BTreeSet::new(),
            by_channel: HashMap::new(),
            channels,
            expiring: BTreeSet::new(),
            ready_bytes: 0,
            inflight: HashMap::new(),
            deadlines: BTreeSet::new(),
            consumers: Vec::new(),
            cursor: 0,
            bytes: 0,
            paged: Paged::default(),
            reserved: Reserved::default(),
            settings,
            store_id,
            dropped: false,
            armed: None,
            created_at_ms: 0,
            extras: None,
            unpublished: Default::default(),
            pull_waiters: VecDeque::new(),
            next_waiter: 0,
        }
    }

    pub fn insert_ready(&mut self, seq: u64, entry: Entry) {
        let expires = entry.record.expires_at_ms;
        // Owned only for a message that has a channel; the common case allocates nothing.
        let channel = match self.channels {
            true => crate::channel::of(&entry.record).map(Arc::<str>::from),
            false => None,
        };
        self.ready_bytes += entry.size();
        if let Some(old) = self.ready.insert(seq, entry) {
            // Never expected: one sequence number is one message. Keep the totals and indexes
            // right anyway, before the new one is indexed.
            self.left_ready(seq, &old);
        }
        if let Some(at) = expires {
            self.expiring.insert((at, seq));
        }
        if let Some(channel) = channel {
            self.by_channel.entry(channel).or_default().insert(seq);
        }
    }

    pub fn take_ready(&mut self) -> Option<(u64, Entry)> {
        let (seq, entry) = self.ready.pop_first()?;
        self.left_ready(seq, &entry);
        Some((seq, entry))
    }

    /// Whether `seq` is in memory, waiting or in flight.
    pub fn holds(&self, seq: u64) -> bool {
        self.ready.contains_key(&seq)
            || self.inflight.contains_key(&seq)
            || self.delayed.contains_key(&seq)
    }

    /// The channels long polls wait for (a prefix names no one channel to read back).
    pub fn waiting_channels(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for w in &self.pull_waiters {
            if let Some(c) = w.channel.as_ref().filter(|c| !c.ends_with('*')) {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    /// How many messages of channel `channel` (a channel id, not a prefix) wait in memory.
    pub fn ready_count_in(&self, channel: &str) -> usize {
        self.by_channel.get(channel).map_or(0, |s| s.len())
    }

    /// The channels with a message waiting in memory.
    pub fn ready_channels(&self) -> impl Iterator<Item = (&Arc<str>, usize)> {
        self.by_channel
            .iter()
            .filter(|(_, seqs)| !seqs.is_empty())
            .map(|(c, seqs)| (c, seqs.len()))
    }

    /// The waiting messages of `channel`.
    pub fn ready_in(&self, channel: &str) -> impl Iterator<Item = &Entry> {
        self.by_channel
            .get(channel)
            .into_iter()
            .flatten()
            .filter_map(|seq| self.ready.get(seq))
    }

    /// The oldest waiting message of `channel`: a channel id, or a prefix ending in `*` (a
    /// pull's `channelFilter=orders-*`), which looks at every channel it matches.
    fn first_ready_in(&self, channel: &str) -> Option<u64> {
        match channel.strip_suffix('*') {
            None => self.by_channel.get(channel)?.first().copied(),
            Some(prefix) => self
                .by_channel
                .iter()
                .filter(|(c, _)| c.starts_with(prefix))
                .filter_map(|(_, seqs)| seqs.first().copied())
                .min(),
        }
    }

    /// Whether a message of `channel` (as for [`State::take_ready_in`]) waits in memory.
    pub fn has_ready_in(&self, channel: &str) -> bool {
        self.first_ready_in(channel).is_some()
    }

    /// The oldest waiting message of `channel`, taken out.
    pub fn take_ready_in(&mut self, channel: &str) -> Option<(u64, Entry)> {
        let seq = self.first_ready_in(channel)?;
        self.remove_ready(seq).map(|e| (seq, e))
    }

    pub fn remove_ready(&mut self, seq: u64) -> Option<Entry> {
        let entry = self.ready.remove(&seq)?;
        self.left_ready(seq, &entry);
        Some(entry)
    }

    fn left_ready(&mut self, seq: u64, entry: &Entry) {
        if let Some(at) = entry.record.expires_at_ms {
            self.expiring.remove(&(at, seq));
        }
        if !self.by_channel.is_empty() {
            if let Some(channel) = crate::channel::of(&entry.record) {
                if let Some(seqs) = self.by_channel.get_mut(channel) {
                    seqs.remove(&seq);
                    if seqs.is_empty() {
                        self.by_channel.remove(channel);
                    }
                }
            }
        }
        self.ready_bytes = self.ready_bytes.saturating_sub(entry.size());
    }

    /// Every waiting message in memory, oldest first.
    pub fn ready(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.ready.iter().map(|(s, e)| (*s, e))
    }

    /// The oldest waiting message in memory.
    pub fn first_ready(&self) -> Option<(u64, &Entry)> {
        self.ready.first_key_value().map(|(s, e)| (*s, e))
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Empties the in-memory waiting messages (a purge).
    pub fn drain_ready(&mut self) -> Vec<(u64, Entry)> {
        self.expiring.clear();
        self.by_channel.clear();
        self.ready_bytes = 0;
        std::mem::take(&mut self.ready).into_iter().collect()
    }

    pub fn take_inflight(&mut self, seq: u64) -> Option<Inflight> {
        let inflight = self.inflight.remove(&seq)?;
        if let Some(d) = inflight.deadline {
            self.deadlines.remove(&(d, seq));
        }
        Some(inflight)
    }

    pub fn insert_inflight(&mut self, seq: u64, inflight: Inflight) {
        if let Some(d) = inflight.deadline {
            self.deadlines.insert((d, seq));
        }
        if let Some(old) = self.inflight.insert(seq, inflight) {
            if let Some(d) = old.deadline {
                self.deadlines.remove(&(d, seq));
            }
        }
    }

    pub fn inflight(&self, seq: u64) -> Option<&Inflight> {
        self.inflight.get(&seq)
    }

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Every in-flight message (a purge keeps them; the admin view lists them).
    pub fn inflight_iter(&self) -> impl Iterator<Item = (u64, &Inflight)> {
        self.inflight.iter().map(|(s, i)| (*s, i))
    }

    /// The next in-flight message whose visibility deadline is at or before `now`, taken out of
    /// the deadline index first.
    pub fn pop_due_deadline(&mut self, now: u64) -> Option<u64> {
        let &(deadline, seq) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop_first();
        Some(seq)
    }

    /// The next waiting message whose `expires` time is at or before `now`, taken out of the
    /// expiry index first.
    pub fn pop_due_expiry(&mut self, now: u64) -> Option<u64> {
        let &(at, seq) = self.expiring.first()?;
        if at > now {
            return None;
        }
        self.expiring.pop_first();
        Some(seq)
    }

    /// The earliest moment something in this queue is due: a visibility deadline, an `expires`
    /// time, the oldest waiting message's retention, or a retry of a failed store read.
    pub fn next_deadline(&self) -> Option<u64> {
        let retention = self.settings.retention.as_millis() as u64;
        [
            self.deadlines.first().map(|d| d.0),
            self.expiring.first().map(|e| e.0),
            self.first_ready()
                .map(|(_, e)| e.record.enqueued_at_ms.saturating_add(retention)),
            self.paged.retry_at,
            self.due.first().map(|d| d.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A message leaves the queue for good (settled, expired, dead-lettered).
    pub fn forget(&mut self, ctx: &Ctx, seq: u64, entry: &Entry, fx: &mut Effects) {
        let size = entry.size();
        self.bytes = self.bytes.saturating_sub(size);
        if let (true, Some(id)) = (entry.stored, self.store_id) {
            fx.ops.push(Op::Delete {
                queue: id,
                seq,
                bytes: size,
                counted: entry.counted,
            });
        }
        let _ = ctx;
    }

    /// Waiting messages, in memory or paged out.
    pub fn waiting(&self) -> usize {
        self.ready.len() + self.paged.count as usize
    }

    /// Bytes of the waiting messages, in memory or paged out (not those in flight).
    pub fn waiting_bytes(&self) -> u64 {
        self.ready_bytes + self.paged.bytes
    }

    /// Bytes of the messages held in memory.
    pub fn memory_bytes(&self) -> u64 {
        self.bytes.saturating_sub(self.paged.bytes)
    }

    /// Removes a message from the queue and hands it to the dead-letter queue, if there is one.
    pub fn dead_letter(
        &mut self,
        ctx: &Ctx,
        seq: u64,
        entry: Entry,
        reason: DeathReason,
        fx: &mut Effects,
    ) {
        self.forget(ctx, seq, &entry, fx);
        if let Some(dlq) = self.dead_letter_queue(ctx) {
            fx.dead.push(DeadLetter {
                source: ctx.name.clone(),
                dead_letter_queue: Arc::from(dlq),
                record: entry.record,
                reason,
            });
        }
    }

    /// Where this queue's dead letters go: what its settings name (the configuration's template,
    /// or a queue named at run time), none for a transient queue or a dead-letter queue itself.
    /// Derived when needed rather than kept: a dead letter is rare, a queue is not.
    pub fn dead_letter_queue(&self, ctx: &Ctx) -> Option<String> {
        ctx.durable
            .then(|| self.settings.dead_letter_queue_of(ctx.name))
            .flatten()
    }

    /// A delivered message comes back: waiting again (after its redelivery delay, when it was
    /// given back by a NACK or a visibility timeout), or dead-lettered once it has used up its
    /// deliveries.
    pub fn requeue(&mut self, ctx: &Ctx, seq: u64, entry: Entry, back: Back, fx: &mut Effects) {
        if self
            .settings
            .max_deliveries
            .is_some_and(|max| entry.deliveries >= max)
        {
            return self.dead_letter(ctx, seq, entry, DeathReason::MaxDeliveries, fx);
        }
        let wait = match back {
            Back::AtOnce => Duration::ZERO,
            Back::Failed { wait: Some(w), .. } => w,
            Back::Failed { wait: None, .. } => self.settings.redelivery_wait(entry.deliveries),
        };
        match back {
            Back::Failed { now, .. } if !wait.is_zero() => {
                let due = now.saturating_add(wait.as_millis() as u64);
                self.due.insert((due, seq));
                self.delayed.insert(seq, (due, entry));
            }
            _ => self.insert_ready(seq, entry),
        }
    }

    /// The delayed messages whose time has come are visible again.
    pub fn release_due(&mut self, now: u64) {
        while let Some(&(due, seq)) = self.due.first() {
            if due > now {
                break;
            }
            self.due.pop_first();
            if let Some((_, entry)) = self.delayed.remove(&seq) {
                self.insert_ready(seq, entry);
            }
        }
    }

    /// Messages waiting out a redelivery delay.
    pub fn delayed_len(&self) -> usize {
        self.delayed.len()
    }

    /// Empties the delayed messages (a purge).
    pub fn drain_delayed(&mut self) -> Vec<(u64, Entry)> {
        self.due.clear();
        self.delayed.drain().map(|(s, (_, e))| (s, e)).collect()
    }

    pub fn consumer_mut(&mut self, id: ConsumerId) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.spec.id == id)
    }

    /// The dispatch number of `seq` if it is in flight to `consumer` — in its `count`th delivery,
    /// when a count is given (a tag of an earlier delivery names nothing now).
    fn dispatch_no(
        &self,
        consumer: ConsumerId,
        seq: u64,
        count: Option<u32>,
    ) -> Result<u64, NotInFlight> {
        let inflight = self.inflight.get(&seq).ok_or(NotInFlight)?;
        match inflight.holder {
            Holder::Consumer { id, dispatch_no }
                if id == consumer && count.is_none_or(|c| c == inflight.entry.deliveries) =>
            {
                Ok(dispatch_no)
            }
            _ => Err(NotInFlight),
        }
    }

    /// The sequence numbers an ACK/NACK of `seq` by `consumer` covers, without settling them.
    pub fn settle_preview(
        &self,
        consumer: ConsumerId,
        seq: u64,
        count: Option<u32>,
        cumulative: bool,
    ) -> Result<Vec<u64>, NotInFlight> {
        let dispatch_no = self.dispatch_no(consumer, seq, count)?;
        let c = self
            .consumers
            .iter()
            .find(|c| c.spec.id == consumer)
            .ok_or(NotInFlight)?;
        Ok(if cumulative {
            c.unacked.range(..=dispatch_no).map(|(_, s)| *s).collect()
        } else {
            vec![seq]
        })
    }

    /// Removes what an ACK/NACK of `seq` covers from `consumer` and from the in-flight table,
    /// restoring the consumer's credit.
    pub fn take_settled(
        &mut self,
        consumer: ConsumerId,
        seq: u64,
        count: Option<u32>,
        cumulative: bool,
    ) -> Result<Vec<(u64, Entry)>, NotInFlight> {
        let dispatch_no = self.dispatch_no(consumer, seq, count)?;
        let c = self.consumer_mut(consumer).ok_or(NotInFlight)?;
        let seqs: Vec<u64> = if cumulative {
            let rest = c.unacked.split_off(&(dispatch_no + 1));
            std::mem::replace(&mut c.unacked, rest)
                .into_values()
                .collect()
        } else {
            c.unacked.remove(&dispatch_no);
            vec![seq]
        };
        c.credit += seqs.len() as u32;
        let settled: Vec<(u64, Entry)> = seqs
            .into_iter()
            .filter_map(|s| self.take_inflight(s).map(|i| (s, i.entry)))
            .collect();
        let bytes: u64 = settled.iter().map(|(_, e)| e.size()).sum();
        if let Some(c) = self.consumer_mut(consumer) {
            c.unacked_bytes = c.unacked_bytes.saturating_sub(bytes);
        }
        Ok(settled)
    }

    /// A visibility deadline passed for `seq`: take it back from whoever holds it. The deadline's
    /// index entry is already gone ([`State::pop_due_deadline`]).
    pub fn expire_delivery(&mut self, seq: u64) -> Option<Entry> {
        let inflight = self.inflight.remove(&seq)?;
        if let Holder::Consumer { id, dispatch_no } = inflight.holder {
            if let Some(c) = self.consumer_mut(id) {
                c.unacked.remove(&dispatch_no);
                c.credit += 1;
                c.unacked_bytes = c.unacked_bytes.saturating_sub(inflight.entry.size());
                if c.expired.len() == REMEMBERED_EXPIRIES {
                    c.expired.pop_front();
                }
                c.expired.push_back(seq);
            }
        }
        Some(inflight.entry)
    }
}
