//! The data a queue's lock protects and the transitions between its states: ready → in flight →
//! settled, requeued or dead-lettered. Every transition records its store ops and dead letters in
//! the caller's [`Effects`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use stampede_store::{MessageRecord, Op};

use super::{ConsumerId, ConsumerSpec, NotInFlight};
use crate::effects::{DeadLetter, DeathReason, Effects};

/// Tokens of expired deliveries remembered per consumer, so a late ACK is not taken for a bogus one.
const REMEMBERED_EXPIRIES: usize = 1024;

/// A message waiting or in flight.
#[derive(Debug, Clone)]
pub(super) struct Entry {
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
}

/// Who holds an in-flight message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    /// A subscription; `dispatch_no` orders its deliveries for cumulative ACKs.
    Consumer { id: ConsumerId, dispatch_no: u64 },
    /// A pull consumer (GetMessages), identified only by the receipt it was handed.
    Pull,
}

#[derive(Debug)]
pub(super) struct Inflight {
    pub entry: Entry,
    pub holder: Holder,
    /// Milliseconds since the epoch when the message becomes visible again, if ever.
    pub deadline: Option<u64>,
}

#[derive(Debug)]
pub(super) struct Consumer {
    pub spec: ConsumerSpec,
    pub credit: u32,
    pub next_dispatch: u64,
    /// Unsettled deliveries in the order they were made: dispatch number → sequence number.
    pub unacked: BTreeMap<u64, u64>,
    /// Messages taken back from this consumer by a visibility timeout, newest last.
    pub expired: VecDeque<u64>,
}

/// Everything behind a queue's lock.
#[derive(Debug, Default)]
pub(super) struct State {
    pub ready: BTreeMap<u64, Entry>,
    pub inflight: HashMap<u64, Inflight>,
    /// (deadline, seq) of in-flight messages that have a visibility deadline.
    pub deadlines: BTreeSet<(u64, u64)>,
    /// (expires at, seq) of waiting messages that carry an `expires` time.
    pub expiring: BTreeSet<(u64, u64)>,
    pub consumers: Vec<Consumer>,
    /// Round-robin position among consumers.
    pub cursor: usize,
    /// Bytes of all messages in the queue, waiting or in flight.
    pub bytes: u64,
    /// Bytes of the messages in `ready`.
    pub ready_bytes: u64,
    /// Where dead letters go; `None` drops them (transient queues, dead-letter queues).
    pub dead_letter_queue: Option<String>,
    pub paged: Paged,
}

/// Waiting messages kept only in the store, beyond the in-memory window. Every one of them has a
/// higher sequence number than every waiting message in memory, so FIFO holds across the boundary.
#[derive(Debug, Default)]
pub(super) struct Paged {
    pub count: u64,
    pub bytes: u64,
    /// Highest sequence number already brought into memory; paged messages lie above it.
    pub cursor: u64,
    /// A read from the store is under way.
    pub reading: bool,
}

/// What the state needs to know about its queue to record effects.
pub(super) struct Ctx<'a> {
    pub name: &'a Arc<str>,
    pub max_deliveries: Option<u32>,
}

impl State {
    pub fn insert_ready(&mut self, seq: u64, entry: Entry) {
        if let Some(at) = entry.record.expires_at_ms {
            self.expiring.insert((at, seq));
        }
        self.ready_bytes += entry.record.size() as u64;
        self.ready.insert(seq, entry);
    }

    pub fn take_ready(&mut self) -> Option<(u64, Entry)> {
        let (seq, entry) = self.ready.pop_first()?;
        self.left_ready(seq, &entry);
        Some((seq, entry))
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
        self.ready_bytes = self.ready_bytes.saturating_sub(entry.record.size() as u64);
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
        self.inflight.insert(seq, inflight);
    }

    /// A message leaves the queue for good (settled, expired, dead-lettered).
    pub fn forget(&mut self, ctx: &Ctx, seq: u64, entry: &Entry, fx: &mut Effects) {
        let size = entry.record.size() as u64;
        self.bytes = self.bytes.saturating_sub(size);
        if entry.stored {
            fx.ops.push(Op::Delete {
                queue: ctx.name.clone(),
                seq,
                bytes: size,
                counted: entry.counted,
            });
        }
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
        if let Some(dlq) = &self.dead_letter_queue {
            fx.dead.push(DeadLetter {
                source: ctx.name.clone(),
                dead_letter_queue: dlq.clone(),
                record: entry.record,
                reason,
            });
        }
    }

    /// A delivered message comes back: waiting again, or dead-lettered once it has used up its
    /// deliveries.
    pub fn requeue(&mut self, ctx: &Ctx, seq: u64, entry: Entry, fx: &mut Effects) {
        match ctx.max_deliveries {
            Some(max) if entry.deliveries >= max => {
                self.dead_letter(ctx, seq, entry, DeathReason::MaxDeliveries, fx)
            }
            _ => self.insert_ready(seq, entry),
        }
    }

    pub fn consumer_mut(&mut self, id: ConsumerId) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.spec.id == id)
    }

    /// The sequence numbers an ACK/NACK of `seq` by `consumer` covers, without settling them.
    pub fn settle_preview(
        &self,
        consumer: ConsumerId,
        seq: u64,
        cumulative: bool,
    ) -> Result<Vec<u64>, NotInFlight> {
        let dispatch_no = match self.inflight.get(&seq).map(|i| i.holder) {
            Some(Holder::Consumer { id, dispatch_no }) if id == consumer => dispatch_no,
            _ => return Err(NotInFlight),
        };
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
        cumulative: bool,
    ) -> Result<Vec<(u64, Entry)>, NotInFlight> {
        let dispatch_no = match self.inflight.get(&seq).map(|i| i.holder) {
            Some(Holder::Consumer { id, dispatch_no }) if id == consumer => dispatch_no,
            _ => return Err(NotInFlight),
        };
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
        Ok(seqs
            .into_iter()
            .filter_map(|s| self.take_inflight(s).map(|i| (s, i.entry)))
            .collect())
    }

    /// A visibility deadline passed for `seq`: take it back from whoever holds it.
    pub fn expire_delivery(&mut self, seq: u64) -> Option<Entry> {
        let inflight = self.take_inflight(seq)?;
        if let Holder::Consumer { id, dispatch_no } = inflight.holder {
            if let Some(c) = self.consumer_mut(id) {
                c.unacked.remove(&dispatch_no);
                c.credit += 1;
                if c.expired.len() == REMEMBERED_EXPIRIES {
                    c.expired.pop_front();
                }
                c.expired.push_back(seq);
            }
        }
        Some(inflight.entry)
    }
}
