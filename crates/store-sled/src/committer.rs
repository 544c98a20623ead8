//! The committer thread: the only owner of sled's write side. It folds every pending job into one
//! round (one batch, one segment sync, one `flush()`), completes the round's commits, forwards the
//! round's reads to the reader thread, and sweeps dropped queues' data when it has nothing else
//! to do (see [`crate::sweep`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use stampede_store::{
    snapshot, Backlog, Completer, MessageRecord, Op, QueueId, ReadDone, RecoveredQueue, Recovery,
    StoreError, StoreObserver,
};

use crate::codec::{self, BodyRef, TAG_DELIVERIES, TAG_MESSAGE, TAG_META, TAG_QUEUE};
use crate::codec::{TAG_SEGMENT, TAG_TOMBSTONE, TAG_TOTALS};
use crate::open::Opened;
use crate::reader::{read_range, ReadJob, Reader};
use crate::rounds::RoundLog;
use crate::segments::Segments;
use crate::staged::Staged;
use crate::{io_error, sled_err, SledOptions};

/// What the committer knows of a live queue; the totals are rewritten whenever a round touches it.
/// Its name and attributes stay in the tree only (recovery reads them there): a broker may hold
/// many queues, and these are the bytes each costs the committer.
pub(crate) struct QueueState {
    pub messages: u64,
    pub bytes: u64,
    /// Above every sequence number the queue has used.
    pub next_seq: u64,
}

impl QueueState {
    pub fn new(next_seq: u64) -> QueueState {
        QueueState {
            messages: 0,
            bytes: 0,
            next_seq: next_seq.max(1),
        }
    }
}

/// State the façade reads while the committer runs.
#[derive(Default)]
pub(crate) struct Shared {
    pub backlog: Backlog,
    /// The error of the first failed round.
    pub failure: Mutex<Option<StoreError>>,
    /// Dropped queues not yet swept, as of the last round.
    pub sweeping: AtomicUsize,
}

pub(crate) enum Job {
    Commit(Commit),
    Request(Request),
}

pub(crate) struct Commit {
    pub ops: Vec<Op>,
    /// What this commit added to the backlog.
    pub bytes: u64,
    pub done: Completer,
}

/// Jobs served after the round they were queued in, so they see every commit before them.
pub(crate) enum Request {
    Read {
        queue: QueueId,
        after: u64,
        max: usize,
        done: ReadDone,
    },
    Recover {
        head: usize,
        done: mpsc::Sender<Result<Recovery, StoreError>>,
    },
    Snapshot {
        sink: Box<dyn snapshot::Sink>,
        done: mpsc::Sender<Result<snapshot::Summary, StoreError>>,
    },
}

/// State owned by the committer thread.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    observer: Option<Arc<dyn StoreObserver>>,
    /// The reader thread's queue and handle (joined when the committer ends).
    reads: Option<(mpsc::Sender<ReadJob>, JoinHandle<()>)>,
    options: SledOptions,
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
    pub(crate) segments: Segments,
    segments_dir: PathBuf,
    pub(crate) queues: HashMap<QueueId, QueueState>,
    /// Dropped queues whose messages are still on disk, behind a tombstone.
    pub(crate) dead: BTreeSet<QueueId>,
    next_queue_id: QueueId,
    /// Queues whose totals the current round must rewrite.
    touched: HashSet<QueueId>,
    /// Number of the last round applied; written into every batch.
    round: u64,
    rounds: RoundLog,
    /// Set by the first failed round. sled does not recover from an i/o error inside a flush (the
    /// next flush waits forever), so from then on every commit fails at once and sled is not
    /// flushed again; what was durable before stays durable for the next start.
    failed: Option<Arc<StoreError>>,
}

impl Committer {
    /// Takes over an opened directory and starts the reader thread.
    pub fn start(
        opened: Opened,
        options: SledOptions,
        observer: Option<Arc<dyn StoreObserver>>,
        shared: Arc<Shared>,
    ) -> Result<Committer, StoreError> {
        let reader = Reader {
            tree: opened.tree.clone(),
            segments_dir: opened.segments_dir.clone(),
        };
        let (reads, read_rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("stampede-reader".into())
            .spawn(move || reader.run(read_rx))
            .map_err(io_error("starting the reader thread"))?;
        shared.sweeping.store(opened.dead.len(), Ordering::Release);
        Ok(Committer {
            shared,
            observer,
            reads: Some((reads, handle)),
            options,
            db: opened.db,
            tree: opened.tree,
            segments: opened.segments,
            segments_dir: opened.segments_dir,
            queues: opened.queues,
            dead: opened.dead,
            next_queue_id: opened.next_queue_id,
            touched: HashSet::new(),
            round: opened.round,
            rounds: opened.rounds,
            failed: None,
        })
    }

    /// Serves jobs until the channel closes; returns whether sled was let go of (not after a
    /// failure, see [`Committer::close`]).
    pub fn run(mut self, rx: mpsc::Receiver<Job>) -> bool {
        loop {
            let first = if self.sweep_pending() {
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => {
                        self.idle_sweep();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            let mut jobs = vec![first];
            while jobs.len() < self.options.max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.process(jobs);
        }
        self.close()
    }

    /// One round: every commit of `jobs` made durable together, then the requests served.
    fn process(&mut self, jobs: Vec<Job>) {
        let mut commits = Vec::new();
        let mut requests = Vec::new();
        for job in jobs {
            match job {
                Job::Commit(c) => commits.push(c),
                Job::Request(r) => requests.push(r),
            }
        }
        let ops: usize = commits.iter().map(|c| c.ops.len()).sum();
        let started = Instant::now();
        // A round carrying commits sweeps a little, so a broker that is never idle still
        // reclaims dropped queues, without making anyone's receipt wait for a big deletion.
        let sweep = match self.options.sweep_keys {
            n if n == 0 || commits.is_empty() => 0,
            n => (n / 8).max(1),
        };
        let result = self.attempt(|c| c.round(commits.iter().flat_map(|c| &c.ops), sweep));
        if let (Some(observer), true) = (&self.observer, ops > 0) {
            observer.round(commits.len(), ops, started.elapsed());
        }
        self.shared
            .backlog
            .remove(commits.iter().map(|c| c.bytes).sum());
        for c in commits {
            c.done.complete(result.clone());
        }
        self.after_round(&result);
        for r in requests {
            self.serve(r);
        }
    }

    fn sweep_pending(&self) -> bool {
        self.failed.is_none() && self.options.sweep_keys > 0 && !self.dead.is_empty()
    }

    /// A round of nothing but sweeping, run when no job is waiting.
    fn idle_sweep(&mut self) {
        let budget = self.options.sweep_keys;
        let result = self.attempt(|c| c.round(std::iter::empty(), budget));
        self.after_round(&result);
    }

    /// Runs `work` unless an earlier round failed; the first failure is kept for every later one.
    fn attempt(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if let Some(first) = &self.failed {
            return Err(StoreError::Failed(first.clone()));
        }
        let result = work(self);
        if let Err(e) = &result {
            tracing::error!(error = %e, "storage write failed; refusing further writes until restart");
            self.failed = Some(Arc::new(e.clone()));
            *self.shared.failure.lock() = Some(e.clone());
        }
        result
    }

    fn after_round(&mut self, result: &Result<(), StoreError>) {
        if result.is_ok() {
            // Only now are the deletes that emptied these segments durable.
            if let Err(e) = self.segments.remove_emptied() {
                tracing::warn!(error = %e, "could not delete an empty segment");
            }
        }
        self.shared
            .sweeping
            .store(self.dead.len(), Ordering::Release);
    }

    /// Stages a sweep step of up to `sweep` keys and every op, then makes them durable. A round
    /// that changes nothing (flush barriers, ops on missing queues) needs no flush: earlier
    /// rounds were durable when they completed.
    fn round<'a>(
        &mut self,
        ops: impl Iterator<Item = &'a Op>,
        sweep: usize,
    ) -> Result<(), StoreError> {
        let mut staged = Staged::default();
        self.touched.clear();
        // Before the ops: the sweep only ever sees queues dropped in earlier rounds, whose keys
        // are all in the tree already.
        if sweep > 0 {
            self.sweep(&mut staged, sweep)?;
        }
        for op in ops {
            self.stage(op, &mut staged)?;
        }
        if staged.is_empty() {
            return Ok(());
        }
        for id in std::mem::take(&mut self.touched) {
            if let Some(q) = self.queues.get(&id) {
                let totals = codec::encode_totals(q.messages, q.bytes, q.next_seq);
                staged.put(&codec::queue_key(TAG_TOTALS, id)[..], &totals[..]);
            }
        }
        self.round += 1;
        staged.put(codec::ROUND_KEY, &self.round.to_be_bytes()[..]);
        self.segments.sync().map_err(io_error("syncing segments"))?;
        self.tree
            .apply_batch(staged.into_batch())
            .map_err(sled_err("applying a commit round"))?;
        self.db.flush().map_err(sled_err("flushing the database"))?;
        self.rounds
            .record(self.round)
            .map_err(io_error("recording the round"))?;
        Ok(())
    }

    fn stage(&mut self, op: &Op, staged: &mut Staged) -> Result<(), StoreError> {
        match op {
            Op::PutQueue {
                id,
                name,
                attrs,
                next_seq,
            } => self.put_queue(*id, name, attrs, *next_seq, staged)?,
            Op::DropQueue { id } => self.drop_queue(*id, staged),
            Op::Put { queue, seq, record } => self.put(*queue, *seq, record, staged)?,
            Op::Delete {
                queue,
                seq,
                bytes,
                counted,
            } => self.delete(*queue, *seq, *bytes, *counted, staged),
            Op::SetDeliveries { queue, seq, count } => {
                if self.queues.contains_key(queue) {
                    let key = codec::message_key(TAG_DELIVERIES, *queue, *seq);
                    staged.put(&key[..], &count.to_be_bytes()[..]);
                }
            }
            Op::PutMeta { key, value } => staged.put(codec::meta_key(key), value.as_ref()),
            Op::DeleteMeta { key } => staged.remove(codec::meta_key(key)),
        }
        Ok(())
    }

    fn put_queue(
        &mut self,
        id: QueueId,
        name: &Arc<str>,
        attrs: &Bytes,
        next_seq: u64,
        staged: &mut Staged,
    ) -> Result<(), StoreError> {
        if self.dead.contains(&id) {
            self.revive(id, staged)?;
        }
        let q = self.queues.entry(id).or_insert_with(|| QueueState::new(1));
        q.next_seq = q.next_seq.max(next_seq);
        self.touched.insert(id);
        let record = codec::encode_queue(name, attrs);
        staged.put(&codec::queue_key(TAG_QUEUE, id)[..], record);
        if id >= self.next_queue_id {
            self.next_queue_id = id.saturating_add(1);
            staged.put(codec::NEXT_QUEUE_KEY, &self.next_queue_id.to_be_bytes()[..]);
        }
        Ok(())
    }

    /// Removes the queue record and totals and leaves a tombstone, all in this batch; the
    /// messages already on disk are swept in later rounds. The ones this round was about to
    /// write are simply not written.
    fn drop_queue(&mut self, id: QueueId, staged: &mut Staged) {
        if self.queues.remove(&id).is_none() {
            return;
        }
        staged.remove(&codec::queue_key(TAG_QUEUE, id)[..]);
        staged.remove(&codec::queue_key(TAG_TOTALS, id)[..]);
        staged.put(&codec::queue_key(TAG_TOMBSTONE, id)[..], &[][..]);
        for seq in staged.discard_queue(id) {
            self.segments.release(id, seq);
        }
        self.dead.insert(id);
    }

    fn put(
        &mut self,
        id: QueueId,
        seq: u64,
        record: &MessageRecord,
        staged: &mut Staged,
    ) -> Result<(), StoreError> {
        let Some(q) = self.queues.get_mut(&id) else {
            return Ok(());
        };
        q.messages += 1;
        q.bytes += record.size() as u64;
        q.next_seq = q.next_seq.max(seq.saturating_add(1));
        self.touched.insert(id);
        let body = if record.body.len() > self.options.inline_limit {
            let body = self
                .segments
                .append(id, seq, &record.body)
                .map_err(io_error("appending to a segment"))?;
            if let BodyRef::Segment { id: segment, .. } = body {
                let key = codec::message_key(TAG_SEGMENT, id, seq);
                staged.put(&key[..], &segment.to_be_bytes()[..]);
            }
            body
        } else {
            BodyRef::Inline
        };
        let key = codec::message_key(TAG_MESSAGE, id, seq);
        staged.put(&key[..], codec::encode_record(record, body));
        Ok(())
    }

    fn delete(&mut self, id: QueueId, seq: u64, bytes: u64, counted: bool, staged: &mut Staged) {
        let Some(q) = self.queues.get_mut(&id) else {
            return;
        };
        q.messages = q.messages.saturating_sub(1);
        q.bytes = q.bytes.saturating_sub(bytes);
        self.touched.insert(id);
        staged.remove(&codec::message_key(TAG_MESSAGE, id, seq)[..]);
        // Removing keys that cannot exist still costs a tree walk each: most deletes (auto-ack,
        // small bodies) have neither a count nor a segment.
        if counted {
            staged.remove(&codec::message_key(TAG_DELIVERIES, id, seq)[..]);
        }
        if self.segments.release(id, seq) {
            staged.remove(&codec::message_key(TAG_SEGMENT, id, seq)[..]);
        }
    }

    fn serve(&mut self, request: Request) {
        match request {
            Request::Read {
                queue,
                after,
                max,
                done,
            } => {
                let job = ReadJob {
                    queue: self.queues.contains_key(&queue).then_some(queue),
                    after,
                    max,
                    done,
                };
                match &self.reads {
                    Some((reads, _)) => {
                        if let Err(mpsc::SendError(job)) = reads.send(job) {
                            (job.done)(Err(StoreError::Closed));
                        }
                    }
                    None => (job.done)(Err(StoreError::Closed)),
                }
            }
            Request::Recover { head, done } => {
                let _ = done.send(self.recover(head));
            }
            Request::Snapshot { sink, done } => {
                let _ = done.send(self.snapshot(sink));
            }
        }
    }

    /// Runs on this thread, so no round is applied until the sink has everything.
    fn snapshot(&self, mut sink: Box<dyn snapshot::Sink>) -> Result<snapshot::Summary, StoreError> {
        /// Messages read at a time, bodies included: a deep queue is not held in memory at once,
        /// and a page of the largest frames (4 MiB by default) stays at tens of MiB.
        const PAGE: usize = 16;
        // After a failed round the committer's view of queues is ahead of the tree (a round is
        // staged before it is applied): a snapshot now could leave out what is on disk. A restart
        // recovers the tree as it is; `stampede backup --offline` takes it from there.
        if let Some(first) = &self.failed {
            return Err(StoreError::Failed(first.clone()));
        }
        let mut summary = snapshot::Summary {
            next_queue_id: self.next_queue_id.max(1),
            ..Default::default()
        };
        for (id, q) in self.live() {
            let (name, attrs) = self.queue_record(id)?;
            sink.entry(snapshot::Entry::Queue {
                id,
                name: Arc::from(name),
                attrs,
                next_seq: q.next_seq,
            })?;
            summary.queues += 1;
            let mut after = 0;
            loop {
                let page = read_range(&self.tree, &self.segments_dir, id, after, PAGE)?;
                let full = page.len() == PAGE;
                for message in page {
                    after = message.seq;
                    sink.entry(snapshot::Entry::Message { queue: id, message })?;
                    summary.messages += 1;
                }
                if !full {
                    break;
                }
            }
        }
        for kv in self.tree.scan_prefix([TAG_META]) {
            let (k, v) = kv.map_err(sled_err("reading metadata"))?;
            sink.entry(snapshot::Entry::Meta {
                key: Arc::from(codec::parse_meta_key(&k)?),
                value: Bytes::copy_from_slice(&v),
            })?;
            summary.meta += 1;
        }
        sink.finish(summary)?;
        Ok(summary)
    }

    /// The live queues, by id.
    fn live(&self) -> Vec<(QueueId, &QueueState)> {
        let mut live: Vec<_> = self.queues.iter().map(|(&id, q)| (id, q)).collect();
        live.sort_unstable_by_key(|(id, _)| *id);
        live
    }

    /// A live queue's name and attributes, which only the tree holds.
    fn queue_record(&self, id: QueueId) -> Result<(String, Bytes), StoreError> {
        let record = self
            .tree
            .get(codec::queue_key(TAG_QUEUE, id))
            .map_err(sled_err("reading a queue record"))?
            .ok_or_else(|| StoreError::Corrupt(format!("queue {id} has no record")))?;
        codec::decode_queue(&record)
    }

    fn recover(&self, head: usize) -> Result<Recovery, StoreError> {
        let live = self.live();
        let mut queues = Vec::with_capacity(live.len());
        for (id, q) in live {
            let (name, attrs) = self.queue_record(id)?;
            queues.push(RecoveredQueue {
                id,
                name: Arc::from(name),
                attrs,
                head: read_range(&self.tree, &self.segments_dir, id, 0, head)?,
                messages: q.messages,
                bytes: q.bytes,
                next_seq: q.next_seq,
            });
        }
        let mut meta = Vec::new();
        for kv in self.tree.scan_prefix([TAG_META]) {
            let (k, v) = kv.map_err(sled_err("reading metadata"))?;
            meta.push((
                Arc::from(codec::parse_meta_key(&k)?),
                Bytes::copy_from_slice(&v),
            ));
        }
        Ok(Recovery {
            queues,
            meta,
            next_queue_id: self.next_queue_id.max(1),
        })
    }

    /// Makes the last rounds durable (unless a round failed) and ends the reader thread; returns
    /// whether sled's handles were dropped.
    fn close(self) -> bool {
        let Committer {
            db,
            tree,
            mut rounds,
            reads,
            failed,
            ..
        } = self;
        if failed.is_none() {
            if let Err(e) = db.flush() {
                tracing::warn!(error = %e, "flushing the database at shutdown failed");
            }
        }
        if let Err(e) = rounds.sync() {
            tracing::warn!(error = %e, "syncing the rounds file at shutdown failed");
        }
        if let Some((reads, reader)) = reads {
            drop(reads);
            let _ = reader.join();
        }
        if failed.is_some() {
            // sled's last tree handle flushes in its destructor, which would wait forever too.
            std::mem::forget(tree);
            std::mem::forget(db);
            return false;
        }
        true
    }
}
