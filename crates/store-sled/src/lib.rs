//! The durable [`Store`] on sled 0.34, with group commit: the [`SledStore`] façade, its options,
//! and the error mapping shared by the other modules.
//!
//! One committer thread owns the database (`committer`). It takes every job that is pending,
//! applies all their commits as one sled `Batch` (atomic), appends large bodies to segment files
//! (`segments`), makes segments and sled durable (segments first, since records point into
//! them), and only then completes every commit of that round. sled's `flush()` covers the whole
//! database, so one committer calling it once per round turns N producers' fsyncs into one
//! (measured on sled 0.34: one committer reaches ~58k msg/s with 128 producers, where concurrent
//! flushers stay near 15k). Reads queued in the same round are handed, after it, to a separate
//! reader thread (`reader`): they see every commit submitted before them, and reading a large
//! batch back does not hold up anyone's receipts. Tokio workers never touch sled: `submit` and
//! `read` only send to the committer's channel.
//!
//! Opening (`open`) never scans the messages: queue records, totals, tombstones and the index
//! of segment bodies are small, and [`Store::recover`] reads only the head of each queue. The key
//! layout is in `codec`; the check against a database that lost confirmed rounds in `rounds`.

mod codec;
mod committer;
mod open;
mod reader;
mod rounds;
mod segments;
mod staged;
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use stampede_store::{
    op_bytes, snapshot, Backlog, Completer, Op, QueueId, ReadDone, Recovery, Store, StoreError,
    StoreObserver,
};

use committer::{Commit, Committer, Job, Request, Shared};

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
    /// Keys of dropped queues removed per sweep round while the committer is idle; a round that
    /// carries commits removes an eighth of this. A commit that arrives during an idle sweep round
    /// waits for it, and sled 0.34 takes ~11 µs per removed key, so this stays small (256: ~3 ms
    /// a round, ~100k keys a second). 0 never sweeps (the data of dropped queues then stays on
    /// disk, invisible): only for tests that need a sweep left unfinished.
    pub sweep_keys: usize,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_capacity: 64 * 1024 * 1024,
            inline_limit: 64 * 1024,
            max_batch: 4096,
            sweep_keys: 256,
        }
    }
}

/// sled-backed store; see the crate docs.
pub struct SledStore {
    shared: Arc<Shared>,
    jobs: Option<mpsc::Sender<Job>>,
    /// Says, once joined, whether sled's handles were dropped.
    committer: Option<JoinHandle<bool>>,
    segments_dir: PathBuf,
    /// The file sled locks.
    db_file: PathBuf,
}

/// Longest a dropped store waits for sled's directory lock to be released.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// A sled error as a [`StoreError`], keeping the `io::Error` when there is one.
pub(crate) fn sled_error(context: &'static str, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(source) => StoreError::io(context, source),
        e @ sled::Error::Corruption { .. } => StoreError::Corrupt(format!("{context}: {e}")),
        e => StoreError::io(context, std::io::Error::other(e.to_string())),
    }
}

/// `map_err` helper: an `io::Error` with what the store was doing.
pub(crate) fn io_error(context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::io(context, e)
}

/// `map_err` helper for sled results.
pub(crate) fn sled_err(context: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |e| sled_error(context, e)
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
        let opened = open::open(dir, &options)?;
        let segments_dir = opened.segments_dir.clone();
        let shared = Arc::new(Shared::default());
        let committer = Committer::start(opened, options, observer, shared.clone())?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("stampede-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(io_error("starting the committer thread"))?;
        Ok(SledStore {
            shared,
            jobs: Some(tx),
            committer: Some(handle),
            segments_dir,
            db_file: dir.join("sled").join("db"),
        })
    }

    /// Segment files and bytes on disk.
    pub fn segment_usage(&self) -> Result<(usize, u64), StoreError> {
        let context = "listing segment files";
        let mut files = 0;
        let mut bytes = 0;
        for entry in std::fs::read_dir(&self.segments_dir).map_err(io_error(context))? {
            let entry = entry.map_err(io_error(context))?;
            if entry.file_name().to_string_lossy().ends_with(".seg") {
                files += 1;
                bytes += entry.metadata().map_err(io_error(context))?.len();
            }
        }
        Ok((files, bytes))
    }

    /// Dropped queues whose messages are still being removed from disk (as of the last round).
    pub fn queues_being_swept(&self) -> usize {
        self.shared.sweeping.load(Ordering::Acquire)
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }
}

impl Store for SledStore {
    fn submit(&self, ops: Vec<Op>, done: Completer) {
        let bytes = op_bytes(&ops);
        self.shared.backlog.add(bytes);
        if let Err(Job::Commit(c)) = self.send(Job::Commit(Commit { ops, bytes, done })) {
            self.shared.backlog.remove(bytes);
            c.done.complete(Err(StoreError::Closed));
        }
    }

    fn recover(&self, head: usize) -> Result<Recovery, StoreError> {
        let (done, rx) = mpsc::channel();
        self.send(Job::Request(Request::Recover { head, done }))
            .map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn read(&self, queue: QueueId, after: u64, max: usize, done: ReadDone) {
        let job = Job::Request(Request::Read {
            queue,
            after,
            max,
            done,
        });
        if let Err(Job::Request(Request::Read { done, .. })) = self.send(job) {
            done(Err(StoreError::Closed));
        }
    }

    fn backlog(&self) -> &Backlog {
        &self.shared.backlog
    }

    fn snapshot(&self, sink: Box<dyn snapshot::Sink>) -> Result<snapshot::Summary, StoreError> {
        let (done, rx) = mpsc::channel();
        self.send(Job::Request(Request::Snapshot { sink, done }))
            .map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn failure(&self) -> Option<String> {
        self.shared.failure.lock().as_ref().map(|e| e.to_string())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Closing the channel ends the committer after it has written what is queued; joining it
        // releases sled's file lock before the caller can open the directory again.
        self.jobs.take();
        let released = self
            .committer
            .take()
            .is_some_and(|h| h.join().unwrap_or(false));
        if released {
            wait_for_lock_release(&self.db_file);
        }
    }
}

/// sled 0.34 keeps its directory locked until the last of its background i/o jobs (log writes,
/// segment truncations, run on a thread pool of its own) has finished, which can be after its
/// last handle was dropped. Waits, bounded, for the lock to be free, so that a dropped store's
/// directory can be opened again at once. The wait is a blocking `flock` (what sled takes) on a
/// helper thread: it wakes as the lock is released; after a timeout the thread is left to take
/// and drop the lock whenever it is released.
fn wait_for_lock_release(db_file: &Path) {
    let Ok(file) = std::fs::File::open(db_file) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("stampede-unlock".into())
        .spawn(move || {
            let _ = fs2::FileExt::lock_exclusive(&file);
            // Released before telling, or the opener would find this thread holding it.
            drop(file);
            let _ = tx.send(());
        });
    if waiter.is_ok() && rx.recv_timeout(LOCK_RELEASE_WAIT).is_err() {
        tracing::warn!(file = %db_file.display(), "sled still holds its lock after shutdown");
    }
}
