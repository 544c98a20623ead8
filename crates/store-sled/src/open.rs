//! Opening a data directory: sled with its file lock, the small index scans (queue records,
//! totals, tombstones, segment references, the queue id high-water mark), older formats, and the
//! refusal to start on a database that lost confirmed rounds. Nothing here reads messages, except
//! the last key of queues whose totals predate `next_seq`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use stampede_store::{QueueId, StoreError};

use crate::codec::{self, TAG_MESSAGE, TAG_QUEUE, TAG_SEGMENT, TAG_TOMBSTONE, TAG_TOTALS};
use crate::committer::QueueState;
use crate::rounds::RoundLog;
use crate::segments::Segments;
use crate::{io_error, sled_err, sled_error, SledOptions};

/// Everything the committer starts from.
pub(crate) struct Opened {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub segments: Segments,
    pub segments_dir: PathBuf,
    pub queues: HashMap<QueueId, QueueState>,
    /// Dropped queues whose data is still on disk.
    pub dead: BTreeSet<QueueId>,
    pub next_queue_id: QueueId,
    /// The last round the database holds.
    pub round: u64,
    pub rounds: RoundLog,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn open(dir: &Path, options: &SledOptions) -> Result<Opened, StoreError> {
    let db = open_db(dir, options)?;
    let tree = db
        .open_tree("messages")
        .map_err(sled_err("opening the messages tree"))?;
    let (round, rounds) = check_rounds(dir, &tree)?;
    let queues = scan_queues(&tree)?;
    let dead = scan_tombstones(&tree)?;
    if let Some(id) = dead.iter().find(|id| queues.contains_key(id)) {
        return Err(StoreError::Corrupt(format!(
            "queue {id} is both stored and dropped"
        )));
    }
    let stored = match tree
        .get(codec::NEXT_QUEUE_KEY)
        .map_err(sled_err("reading the queue id mark"))?
    {
        Some(v) => codec::decode_u64(&v, "queue id mark")?,
        None => 1,
    };
    let highest = queues.keys().chain(dead.iter()).max();
    let next_queue_id = stored.max(highest.map_or(1, |id| id.saturating_add(1)));
    let segments_dir = dir.join("segments");
    let mut segments = Segments::open(&segments_dir).map_err(io_error("opening segments"))?;
    index_segments(&tree, &mut segments)?;
    segments
        .remove_unreferenced()
        .map_err(io_error("removing unreferenced segments"))?;
    Ok(Opened {
        db,
        tree,
        segments,
        segments_dir,
        queues,
        dead,
        next_queue_id,
        round,
        rounds,
    })
}

fn open_db(dir: &Path, options: &SledOptions) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(dir.join("sled"))
        .cache_capacity(options.cache_capacity)
        .flush_every_ms(None)
        .open()
        .map_err(|e| match e {
            // sled reports its file lock only in the message text.
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked(dir.display().to_string())
            }
            e => sled_error("opening the database", e),
        })
}

/// The round the database holds, after checking it is not older than the one recorded beside it.
fn check_rounds(dir: &Path, tree: &sled::Tree) -> Result<(u64, RoundLog), StoreError> {
    let round = match tree
        .get(codec::ROUND_KEY)
        .map_err(sled_err("reading the round number"))?
    {
        Some(v) => codec::decode_u64(&v, "round number")?,
        None => 0,
    };
    let (rounds, recorded) =
        RoundLog::open(&dir.join("rounds")).map_err(io_error("opening the rounds file"))?;
    match recorded.filter(|r| *r > round) {
        Some(recorded) => Err(StoreError::Corrupt(format!(
            "the database in {} ends at commit round {round}, but round {recorded} was \
             confirmed before: sled cut off a damaged or truncated log and lost confirmed \
             messages. Refusing to start on it; restore the data directory from a backup, or \
             move it aside to start empty",
            dir.join("sled").display()
        ))),
        None => Ok((round, rounds)),
    }
}

/// Queue records with their totals. A queue whose totals do not hold `next_seq` (older
/// directories) gets one above its last stored message.
fn scan_queues(tree: &sled::Tree) -> Result<HashMap<QueueId, QueueState>, StoreError> {
    let mut queues = HashMap::new();
    for kv in tree.scan_prefix([TAG_QUEUE]) {
        let (k, v) = kv.map_err(sled_err("reading queue records"))?;
        let id = codec::parse_queue_key(&k).ok_or_else(|| corrupt("queue key"))?;
        // Decoded to refuse a damaged record now, not at recovery; kept in the tree only.
        codec::decode_queue(&v)?;
        queues.insert(id, QueueState::new(1));
    }
    let mut known_next = HashSet::new();
    for kv in tree.scan_prefix([TAG_TOTALS]) {
        let (k, v) = kv.map_err(sled_err("reading queue totals"))?;
        let id = codec::parse_queue_key(&k).ok_or_else(|| corrupt("totals key"))?;
        let totals = codec::decode_totals(&v)?;
        let Some(q) = queues.get_mut(&id) else {
            tracing::warn!(queue = id, "totals of a queue that has no record; ignored");
            continue;
        };
        q.messages = totals.messages;
        q.bytes = totals.bytes;
        if let Some(next) = totals.next_seq {
            q.next_seq = next.max(1);
            known_next.insert(id);
        }
    }
    for (id, q) in queues.iter_mut() {
        if !known_next.contains(id) {
            q.next_seq = last_seq(tree, *id)?.map_or(1, |s| s.saturating_add(1));
        }
    }
    Ok(queues)
}

fn last_seq(tree: &sled::Tree, id: QueueId) -> Result<Option<u64>, StoreError> {
    let last = tree
        .scan_prefix(codec::queue_key(TAG_MESSAGE, id))
        .next_back()
        .transpose()
        .map_err(sled_err("reading the last message of a queue"))?;
    match last {
        Some((k, _)) => Ok(Some(
            codec::parse_message_key(&k)
                .ok_or_else(|| corrupt("message key"))?
                .1,
        )),
        None => Ok(None),
    }
}

fn scan_tombstones(tree: &sled::Tree) -> Result<BTreeSet<QueueId>, StoreError> {
    let mut dead = BTreeSet::new();
    for kv in tree.scan_prefix([TAG_TOMBSTONE]) {
        let (k, _) = kv.map_err(sled_err("reading tombstones"))?;
        dead.insert(codec::parse_queue_key(&k).ok_or_else(|| corrupt("tombstone key"))?);
    }
    Ok(dead)
}

/// Tells `segments` which message keeps its body where, dropped queues' included: their files
/// stay until the sweep has released them.
fn index_segments(tree: &sled::Tree, segments: &mut Segments) -> Result<(), StoreError> {
    for kv in tree.scan_prefix([TAG_SEGMENT]) {
        let (k, v) = kv.map_err(sled_err("reading the segment index"))?;
        let (id, seq) = codec::parse_message_key(&k).ok_or_else(|| corrupt("segment key"))?;
        segments.note(id, seq, codec::decode_u64(&v, "segment id")?);
    }
    Ok(())
}
