//! The durable [`Store`] on sled 0.34, with group commit.
//!
//! One committer thread owns the database. It takes every job that is pending, applies all their
//! commits as one sled `Batch` (atomic), appends large bodies to segment files, makes segments and
//! sled durable (segments first, since records point into them), and only then resolves every
//! ticket of that round. Reads queued in the same round are handed, after it, to a separate reader
//! thread: they see every commit submitted before them, and reading a large batch back for one
//! queue does not hold up anyone's receipts. sled's `flush()` covers the whole database, so one committer calling
//! it once per round is what turns N producers' fsyncs into one (ENGINE.md: one committer reaches
//! ~58k msg/s with 128 producers where concurrent flushers stay near 15k). Tokio workers never
//! touch sled: `commit` and `read` only send to the committer's channel.
//!
//! Opening never scans the messages: queue names, per-queue totals and the index of segment bodies
//! are small, and [`Store::recover`] reads only the head of each queue.

mod codec;
mod rounds;
mod segments;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{
    Backlog, MessageRecord, Op, ReadDone, Recovered, RecoveredQueue, RecoveredQueues, Store,
    StoreError, StoreObserver, Ticket,
};
use codec::{BodyRef, TAG_DELIVERIES, TAG_MESSAGE, TAG_QUEUE, TAG_SEGMENT, TAG_TOTALS};
use rounds::RoundLog;
use segments::Segments;

/// Tuning of the sled store.
#[derive(Debug, Clone, Copy)]
pub struct SledOptions {
    /// sled's page cache, in bytes.
    pub cache_capacity: u64,
    /// Bodies larger than this go to segment files instead of sled (must stay below sled's
    /// ~128 KiB blob threshold).
    pub inline_limit: usize,
    /// Most jobs folded into one round.
    pub max_batch: usize,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_capacity: 64 * 1024 * 1024,
            inline_limit: 64 * 1024,
            max_batch: 4096,
        }
    }
}

enum Job {
    Commit {
        ops: Vec<Op>,
        /// What this commit added to the backlog.
        bytes: u64,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Read {
        queue: Arc<str>,
        after: u64,
        max: usize,
        done: ReadDone,
    },
    Recover {
        head: usize,
        done: mpsc::Sender<Result<RecoveredQueues, StoreError>>,
    },
}

/// A read forwarded from the committer to the reader thread, its queue already resolved.
struct ReadJob {
    qid: Option<u64>,
    after: u64,
    max: usize,
    done: ReadDone,
}

/// sled-backed store; see the module docs.
pub struct SledStore {
    /// Why writes are refused, once a round has failed (shared with the committer).
    failed: Arc<Mutex<Option<String>>>,
    backlog: Arc<Backlog>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    segments_dir: PathBuf,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

impl SledStore {
    /// Opens (or creates) the store under `dir`. Blocking: call before serving, or from a
    /// blocking context.
    pub fn open(dir: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        Self::open_observed(dir, options, None)
    }

    /// Like [`SledStore::open`], reporting every commit round to `observer`.
    pub fn open_observed(
        dir: &Path,
        options: SledOptions,
        observer: Option<Arc<dyn StoreObserver>>,
    ) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(None)
            .open()
            .map_err(|e| {
                // sled reports its file lock only in the message text.
                if e.to_string().contains("could not acquire lock") {
                    StoreError::Io(format!(
                        "{} is in use by another process (is another broker running on this data \
                         directory?)",
                        dir.display()
                    ))
                } else {
                    io(e)
                }
            })?;
        let tree = db.open_tree("messages").map_err(io)?;
        let segments_dir = dir.join("segments");
        let mut segments = Segments::open(&segments_dir).map_err(io)?;
        let mut names = HashMap::new();
        for kv in tree.scan_prefix([TAG_QUEUE]) {
            let (k, v) = kv.map_err(io)?;
            let qid = codec::parse_queue_key(&k).ok_or_else(|| corrupt("queue key"))?;
            let name = String::from_utf8(v.to_vec()).map_err(|_| corrupt("queue name"))?;
            names.insert(Arc::<str>::from(name), qid);
        }
        let mut totals = HashMap::new();
        for kv in tree.scan_prefix([TAG_TOTALS]) {
            let (k, v) = kv.map_err(io)?;
            let qid = codec::parse_queue_key(&k).ok_or_else(|| corrupt("totals key"))?;
            totals.insert(
                qid,
                codec::decode_totals(&v).ok_or_else(|| corrupt("totals"))?,
            );
        }
        for kv in tree.scan_prefix([TAG_SEGMENT]) {
            let (k, v) = kv.map_err(io)?;
            let (qid, seq) = codec::parse_message_key(&k).ok_or_else(|| corrupt("segment key"))?;
            let id = v
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("segment id"))?;
            segments.note(qid, seq, id);
        }
        segments.remove_unreferenced().map_err(io)?;
        let round = match tree.get(codec::ROUND_KEY).map_err(io)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| corrupt("round"))?),
            None => 0,
        };
        let (rounds, recorded) = RoundLog::open(&dir.join("rounds")).map_err(io)?;
        if let Some(recorded) = recorded.filter(|r| *r > round) {
            return Err(StoreError::Corrupt(format!(
                "the database in {} ends at commit round {round}, but round {recorded} was \
                 confirmed before: sled cut off a damaged or truncated log and lost confirmed \
                 messages. Refusing to start on it; restore the data directory from a backup, or \
                 move it aside to start empty",
                dir.join("sled").display()
            )));
        }
        let (reads, read_rx) = mpsc::channel::<ReadJob>();
        let reader = Reader {
            tree: tree.clone(),
            segments_dir: segments_dir.clone(),
        };
        let reader = std::thread::Builder::new()
            .name("stampede-reader".into())
            .spawn(move || reader.run(read_rx))
            .map_err(io)?;
        let failed = Arc::new(Mutex::new(None));
        let backlog = Arc::new(Backlog::default());
        let committer = Committer {
            shared_failure: failed.clone(),
            backlog: backlog.clone(),
            observer,
            reads: Some((reads, reader)),
            segments_dir: segments_dir.clone(),
            round,
            rounds,
            next_qid: names.values().max().map_or(1, |m| m + 1),
            names,
            totals,
            db,
            tree,
            segments,
            options,
            failed: None,
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("stampede-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(io)?;
        Ok(SledStore {
            failed,
            backlog,
            jobs: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(handle)),
            segments_dir,
        })
    }

    /// Segment files and bytes on disk.
    pub fn segment_usage(&self) -> Result<(usize, u64), StoreError> {
        let mut files = 0;
        let mut bytes = 0;
        for entry in std::fs::read_dir(&self.segments_dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.file_name().to_string_lossy().ends_with(".seg") {
                files += 1;
                bytes += entry.metadata().map_err(io)?.len();
            }
        }
        Ok((files, bytes))
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        match self.jobs.lock().as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }
}

impl Store for SledStore {
    fn commit(&self, ops: Vec<Op>) -> Ticket {
        let (ticket, done) = Ticket::pending();
        let bytes = crate::op_bytes(&ops);
        self.backlog.add(bytes);
        match self.send(Job::Commit { ops, bytes, done }) {
            Ok(()) => ticket,
            Err(_) => {
                self.backlog.remove(bytes);
                Ticket::ready(Err(StoreError::Closed))
            }
        }
    }

    fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    fn recover(&self, head: usize) -> Result<RecoveredQueues, StoreError> {
        let (done, rx) = mpsc::channel();
        self.send(Job::Recover { head, done })
            .map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn read(&self, queue: Arc<str>, after: u64, max: usize, done: ReadDone) {
        if let Err(Job::Read { done, .. }) = self.send(Job::Read {
            queue,
            after,
            max,
            done,
        }) {
            done(Err(StoreError::Closed));
        }
    }

    fn flush(&self) -> Ticket {
        self.commit(Vec::new())
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().clone()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Closing the channel ends the committer after it has written what is queued.
        self.jobs.lock().take();
        if let Some(h) = self.committer.lock().take() {
            let _ = h.join();
        }
    }
}

/// State owned by the committer thread.
struct Committer {
    shared_failure: Arc<Mutex<Option<String>>>,
    backlog: Arc<Backlog>,
    observer: Option<Arc<dyn StoreObserver>>,
    /// The reader thread's queue and handle (joined when the committer ends).
    reads: Option<(mpsc::Sender<ReadJob>, JoinHandle<()>)>,
    segments_dir: PathBuf,
    names: HashMap<Arc<str>, u64>,
    next_qid: u64,
    /// (messages, bytes) stored per queue id.
    totals: HashMap<u64, (u64, u64)>,
    db: sled::Db,
    tree: sled::Tree,
    segments: Segments,
    options: SledOptions,
    /// Number of the last round applied; written into every batch.
    round: u64,
    rounds: RoundLog,
    /// Set by the first failed round. sled does not recover from an i/o error inside a flush (the
    /// next flush waits forever), so from then on every commit fails at once and sled is not
    /// flushed again; what was durable before stays durable for the next start.
    failed: Option<String>,
}

impl Committer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.options.max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let mut waiting = Vec::new();
            let mut written = 0;
            let mut later = Vec::new();
            let mut ops: Vec<&Op> = Vec::new();
            let mut commits = 0;
            for job in &jobs {
                if let Job::Commit { ops: o, .. } = job {
                    ops.extend(o.iter());
                    commits += 1;
                }
            }
            let started = std::time::Instant::now();
            let result = match &self.failed {
                Some(reason) => Err(StoreError::Io(format!(
                    "storage failed earlier and accepts no writes until restarted: {reason}"
                ))),
                None => self.round(&ops),
            };
            if let (Err(e), None) = (&result, &self.failed) {
                tracing::error!(error = %e, "storage write failed; refusing further writes until restart");
                self.failed = Some(e.to_string());
                *self.shared_failure.lock() = self.failed.clone();
            }
            if let (Some(observer), false) = (&self.observer, ops.is_empty()) {
                observer.round(commits, ops.len(), started.elapsed());
            }
            for job in jobs {
                match job {
                    Job::Commit { done, bytes, .. } => {
                        written += bytes;
                        waiting.push(done);
                    }
                    other => later.push(other),
                }
            }
            self.backlog.remove(written);
            for done in waiting {
                let _ = done.send(result.clone());
            }
            if result.is_ok() {
                if let Err(e) = self.segments.remove_emptied() {
                    tracing::warn!(error = %e, "could not delete an empty segment");
                }
            }
            for job in later {
                self.serve(job);
            }
        }
        if self.failed.is_some() {
            // sled's Tree flushes in its destructor and would wait forever here too.
            std::mem::forget(self);
            return;
        }
        let _ = self.db.flush();
        let _ = self.rounds.sync();
        if let Some((reads, reader)) = self.reads.take() {
            drop(reads);
            let _ = reader.join();
        }
    }

    fn serve(&mut self, job: Job) {
        match job {
            Job::Read {
                queue,
                after,
                max,
                done,
            } => {
                let qid = self.names.get(&queue).copied();
                let job = ReadJob {
                    qid,
                    after,
                    max,
                    done,
                };
                if let Some((reads, _)) = &self.reads {
                    if let Err(mpsc::SendError(job)) = reads.send(job) {
                        (job.done)(Err(StoreError::Closed));
                    }
                }
            }
            Job::Recover { head, done } => {
                let _ = done.send(self.recover(head));
            }
            Job::Commit { .. } => unreachable!("commits are applied in the round"),
        }
    }

    /// Applies one round: stage every op, make segments durable, apply the batch, flush. A round
    /// of empty commits (flush barriers) has nothing to do: earlier rounds were durable when they
    /// resolved.
    fn round(&mut self, ops: &[&Op]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut touched = HashSet::new();
        for op in ops {
            self.stage(op, &mut batch, &mut touched)?;
        }
        for qid in touched {
            let (n, bytes) = self.totals.get(&qid).copied().unwrap_or_default();
            batch.insert(
                &codec::queue_key(TAG_TOTALS, qid)[..],
                &codec::encode_totals(n, bytes)[..],
            );
        }
        self.round += 1;
        batch.insert(codec::ROUND_KEY, &self.round.to_be_bytes()[..]);
        self.segments.sync().map_err(io)?;
        self.tree.apply_batch(batch).map_err(io)?;
        self.db.flush().map_err(io)?;
        self.rounds.record(self.round).map_err(io)?;
        Ok(())
    }

    fn qid(&mut self, name: &Arc<str>, batch: &mut sled::Batch) -> u64 {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.next_qid;
        self.next_qid += 1;
        batch.insert(&codec::queue_key(TAG_QUEUE, id)[..], name.as_bytes());
        self.names.insert(name.clone(), id);
        id
    }

    fn stage(
        &mut self,
        op: &Op,
        batch: &mut sled::Batch,
        touched: &mut HashSet<u64>,
    ) -> Result<(), StoreError> {
        match op {
            Op::Put { queue, seq, record } => {
                let qid = self.qid(queue, batch);
                let body = if record.body.len() > self.options.inline_limit {
                    let body = self.segments.append(qid, *seq, &record.body).map_err(io)?;
                    if let BodyRef::Segment { id, .. } = body {
                        batch.insert(
                            &codec::message_key(TAG_SEGMENT, qid, *seq)[..],
                            &id.to_be_bytes()[..],
                        );
                    }
                    body
                } else {
                    BodyRef::Inline
                };
                let key = codec::message_key(TAG_MESSAGE, qid, *seq);
                batch.insert(&key[..], codec::encode_record(record, body));
                let t = self.totals.entry(qid).or_default();
                t.0 += 1;
                t.1 += record.size() as u64;
                touched.insert(qid);
            }
            Op::Delete {
                queue,
                seq,
                bytes,
                counted,
            } => {
                let qid = self.qid(queue, batch);
                batch.remove(&codec::message_key(TAG_MESSAGE, qid, *seq)[..]);
                // Removing keys that cannot exist still costs a tree walk each: most deletes
                // (auto-ack, small bodies) have neither a count nor a segment.
                if *counted {
                    batch.remove(&codec::message_key(TAG_DELIVERIES, qid, *seq)[..]);
                }
                if self.segments.release(qid, *seq) {
                    batch.remove(&codec::message_key(TAG_SEGMENT, qid, *seq)[..]);
                }
                let t = self.totals.entry(qid).or_default();
                t.0 = t.0.saturating_sub(1);
                t.1 = t.1.saturating_sub(*bytes);
                touched.insert(qid);
            }
            Op::SetDeliveries { queue, seq, count } => {
                let qid = self.qid(queue, batch);
                let key = codec::message_key(TAG_DELIVERIES, qid, *seq);
                batch.insert(&key[..], &count.to_be_bytes()[..]);
            }
        }
        Ok(())
    }

    fn recover(&self, head: usize) -> Result<RecoveredQueues, StoreError> {
        let mut out = Vec::with_capacity(self.names.len());
        for (name, &qid) in &self.names {
            let last = self
                .tree
                .scan_prefix(codec::queue_key(TAG_MESSAGE, qid))
                .next_back()
                .transpose()
                .map_err(io)?;
            let next_seq = match last {
                Some((k, _)) => {
                    codec::parse_message_key(&k)
                        .ok_or_else(|| corrupt("message key"))?
                        .1
                        + 1
                }
                None => 1,
            };
            let (messages, bytes) = self.totals.get(&qid).copied().unwrap_or_default();
            out.push(RecoveredQueue {
                name: name.to_string(),
                head: read_range(&self.tree, &self.segments_dir, qid, 0, head)?,
                messages,
                bytes,
                next_seq,
            });
        }
        Ok(out)
    }
}

/// Serves page-in reads off the committer thread.
struct Reader {
    tree: sled::Tree,
    segments_dir: PathBuf,
}

impl Reader {
    fn run(self, rx: mpsc::Receiver<ReadJob>) {
        while let Ok(job) = rx.recv() {
            let result = match job.qid {
                Some(qid) => read_range(&self.tree, &self.segments_dir, qid, job.after, job.max),
                None => Ok(Vec::new()),
            };
            (job.done)(result);
        }
    }
}

/// Up to `max` messages of queue `qid` after `after`, bodies and delivery counts included.
fn read_range(
    tree: &sled::Tree,
    segments_dir: &Path,
    qid: u64,
    after: u64,
    max: usize,
) -> Result<Vec<Recovered>, StoreError> {
    let from = codec::message_key(TAG_MESSAGE, qid, after.saturating_add(1));
    let to = codec::message_key(TAG_MESSAGE, qid, u64::MAX);
    let mut out = Vec::new();
    for kv in tree.range(from..=to).take(max) {
        let (k, v) = kv.map_err(io)?;
        let (_, seq) = codec::parse_message_key(&k).ok_or_else(|| corrupt("message key"))?;
        let (mut record, body): (MessageRecord, BodyRef) = codec::decode_record(&v)?;
        if let BodyRef::Segment { id, offset, len } = body {
            record.body = segments::read_body(segments_dir, id, offset, len).map_err(io)?;
        }
        let deliveries = tree
            .get(codec::message_key(TAG_DELIVERIES, qid, seq))
            .map_err(io)?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(0);
        out.push(Recovered {
            seq,
            record: Arc::new(record),
            deliveries,
        });
    }
    Ok(out)
}
