//! The durable [`Store`] on sled 0.34, with group commit.
//!
//! One committer thread owns all writes. It takes every commit that is pending, applies them as one
//! sled `Batch` (atomic), appends large bodies to segment files, makes segments and sled durable
//! (segments first, since records point into them), and only then resolves every ticket of that
//! round. sled's `flush()` covers the whole database, so one committer calling it once per round
//! is what turns N producers' fsyncs into one (ENGINE.md: one committer reaches ~58k msg/s with 128
//! producers where concurrent flushers stay near 15k). Tokio workers never touch sled: `commit`
//! only sends to the committer's channel.

mod codec;
mod segments;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{Op, Recovered, RecoveredQueues, Store, StoreError, Ticket};
use codec::{BodyRef, TAG_DELIVERIES, TAG_MESSAGE, TAG_QUEUE};
use segments::Segments;

/// Tuning of the sled store.
#[derive(Debug, Clone, Copy)]
pub struct SledOptions {
    /// sled's page cache, in bytes.
    pub cache_capacity: u64,
    /// Bodies larger than this go to segment files instead of sled (must stay below sled's
    /// ~128 KiB blob threshold).
    pub inline_limit: usize,
    /// Most commits folded into one round.
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

struct Job {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// sled-backed store; see the module docs.
pub struct SledStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    recovered: Mutex<Option<RecoveredQueues>>,
    segments_dir: std::path::PathBuf,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the store under `dir` and reads everything back for [`Store::recover`].
    /// Blocking: call before serving, or from a blocking context.
    pub fn open(dir: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(None)
            .open()
            .map_err(io)?;
        let tree = db.open_tree("messages").map_err(io)?;
        let segments_dir = dir.join("segments");
        let mut segments = Segments::open(&segments_dir).map_err(io)?;
        let (names, recovered) = recover(&tree, &mut segments)?;
        segments.remove_unreferenced().map_err(io)?;
        let committer = Committer {
            next_qid: names.values().max().map_or(1, |m| m + 1),
            names,
            db,
            tree,
            segments,
            options,
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("stampede-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(io)?;
        Ok(SledStore {
            jobs: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(handle)),
            recovered: Mutex::new(Some(recovered)),
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
}

impl Store for SledStore {
    fn commit(&self, ops: Vec<Op>) -> Ticket {
        let (ticket, done) = Ticket::pending();
        let sent = match self.jobs.lock().as_ref() {
            Some(tx) => tx.send(Job { ops, done }).is_ok(),
            None => false,
        };
        if sent {
            ticket
        } else {
            Ticket::ready(Err(StoreError::Closed))
        }
    }

    fn recover(&self) -> Result<RecoveredQueues, StoreError> {
        Ok(self.recovered.lock().take().unwrap_or_default())
    }

    fn flush(&self) -> Ticket {
        self.commit(Vec::new())
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

/// Reads every queue name, delivery count and message; bodies in segments are read back.
fn recover(
    tree: &sled::Tree,
    segments: &mut Segments,
) -> Result<(HashMap<Arc<str>, u64>, RecoveredQueues), StoreError> {
    let mut names: HashMap<u64, Arc<str>> = HashMap::new();
    for kv in tree.scan_prefix([TAG_QUEUE]) {
        let (k, v) = kv.map_err(io)?;
        let qid = u64::from_be_bytes(
            k.get(1..9)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt("queue key".into()))?,
        );
        let name =
            String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt("queue name".into()))?;
        names.insert(qid, Arc::from(name));
    }
    let mut counts: HashMap<(u64, u64), u32> = HashMap::new();
    for kv in tree.scan_prefix([TAG_DELIVERIES]) {
        let (k, v) = kv.map_err(io)?;
        let key = codec::parse_message_key(&k)
            .ok_or_else(|| StoreError::Corrupt("deliveries key".into()))?;
        let n = v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(0);
        counts.insert(key, n);
    }
    let mut queues: Vec<(u64, Vec<Recovered>)> = Vec::new();
    for kv in tree.scan_prefix([TAG_MESSAGE]) {
        let (k, v) = kv.map_err(io)?;
        let (qid, seq) = codec::parse_message_key(&k)
            .ok_or_else(|| StoreError::Corrupt("message key".into()))?;
        let (mut record, body) = codec::decode_record(&v)?;
        if let BodyRef::Segment { id, offset, len } = body {
            record.body = segments.read(qid, seq, id, offset, len).map_err(io)?;
        }
        if queues.last().is_none_or(|(q, _)| *q != qid) {
            queues.push((qid, Vec::new()));
        }
        if let Some((_, msgs)) = queues.last_mut() {
            msgs.push(Recovered {
                seq,
                record: Arc::new(record),
                deliveries: counts.get(&(qid, seq)).copied().unwrap_or(0),
            });
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for (qid, msgs) in queues {
        let name = names
            .get(&qid)
            .ok_or_else(|| StoreError::Corrupt(format!("messages of unknown queue {qid}")))?;
        out.push((name.to_string(), msgs));
    }
    for name in names.values() {
        if !out.iter().any(|(n, _)| n.as_str() == &**name) {
            out.push((name.to_string(), Vec::new()));
        }
    }
    let by_name = names.into_iter().map(|(id, n)| (n, id)).collect();
    Ok((by_name, out))
}

/// State owned by the committer thread.
struct Committer {
    names: HashMap<Arc<str>, u64>,
    next_qid: u64,
    db: sled::Db,
    tree: sled::Tree,
    segments: Segments,
    options: SledOptions,
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
            let result = self.round(&jobs);
            for job in jobs {
                let _ = job.done.send(result.clone());
            }
            if result.is_ok() {
                if let Err(e) = self.segments.remove_emptied() {
                    tracing::warn!(error = %e, "could not delete an empty segment");
                }
            }
        }
        let _ = self.db.flush();
    }

    /// Applies one round: stage every op, make segments durable, apply the batch, flush.
    fn round(&mut self, jobs: &[Job]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in jobs.iter().flat_map(|j| j.ops.iter()) {
            self.stage(op, &mut batch)?;
        }
        self.segments.sync().map_err(io)?;
        self.tree.apply_batch(batch).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    fn qid(&mut self, name: &Arc<str>, batch: &mut sled::Batch) -> u64 {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.next_qid;
        self.next_qid += 1;
        batch.insert(&codec::queue_key(id)[..], name.as_bytes());
        self.names.insert(name.clone(), id);
        id
    }

    fn stage(&mut self, op: &Op, batch: &mut sled::Batch) -> Result<(), StoreError> {
        match op {
            Op::Put { queue, seq, record } => {
                let qid = self.qid(queue, batch);
                let body = if record.body.len() > self.options.inline_limit {
                    self.segments.append(qid, *seq, &record.body).map_err(io)?
                } else {
                    BodyRef::Inline
                };
                let key = codec::message_key(TAG_MESSAGE, qid, *seq);
                batch.insert(&key[..], codec::encode_record(record, body));
            }
            Op::Delete { queue, seq } => {
                let qid = self.qid(queue, batch);
                batch.remove(&codec::message_key(TAG_MESSAGE, qid, *seq)[..]);
                batch.remove(&codec::message_key(TAG_DELIVERIES, qid, *seq)[..]);
                self.segments.release(qid, *seq);
            }
            Op::SetDeliveries { queue, seq, count } => {
                let qid = self.qid(queue, batch);
                let key = codec::message_key(TAG_DELIVERIES, qid, *seq);
                batch.insert(&key[..], &count.to_be_bytes()[..]);
            }
        }
        Ok(())
    }
}
