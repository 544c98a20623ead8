//! Snapshots: everything a store holds at one instant between two commits ([`Store::snapshot`]),
//! the portable file a backup is written in ([`Writer`], [`Reader`]), and [`restore`], which puts
//! a snapshot into an empty store of any backend.
//!
//! A snapshot is what a `kill -9` at that instant would leave: every committed queue (its name,
//! attributes and sequence counter), every stored message with its last delivery count, every
//! metadata entry, and the next queue id (so a restored broker never reuses the id of a queue
//! dropped before the backup — OCI receipts and message ids name queue ids).
//!
//! ### File format (version 1)
//! `STAMPEDE-SNAPSHOT` then a version byte, then entries: a tag byte, a big-endian `u32` payload
//! length, the payload. Strings and byte strings inside a payload are a `u32` length and the bytes.
//! - `1` queue: id `u64`, next_seq `u64`, name, attrs
//! - `2` message: queue `u64`, seq `u64`, deliveries `u32`, enqueued_at_ms `u64`, expires_at_ms
//!   `u64` (0 = none), header count `u32`, then name and value of each, body
//! - `3` metadata: key, value
//! - `0xFF` end: next_queue_id, queues, messages, metadata entries (`u64` each), then the CRC-32 of
//!   every byte before it (the file header, every entry, the end entry's own fields).
//!
//! A file without its end entry, with a wrong checksum or with counts that disagree is refused as
//! a whole: [`verify`] reads it through before [`restore`] writes anything.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;

use crate::{MessageRecord, Op, QueueId, Store, StoreError, StoredMessage};

/// The first bytes of every snapshot file.
pub const MAGIC: &[u8; 17] = b"STAMPEDE-SNAPSHOT";
/// The format [`Writer`] writes and [`Reader`] reads.
pub const VERSION: u8 = 1;

const TAG_QUEUE: u8 = 1;
const TAG_MESSAGE: u8 = 2;
const TAG_META: u8 = 3;
const TAG_END: u8 = 0xFF;
/// No entry is larger than a message, and the broker's frames are far below this; a length above
/// it means a damaged file, not a big message, and is refused before anything is allocated.
const MAX_ENTRY: u32 = 1 << 30;

/// One entry of a snapshot, in the order stores hand them out: each queue, then its messages in
/// sequence order; metadata after all queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Queue {
        id: QueueId,
        name: Arc<str>,
        attrs: Bytes,
        next_seq: u64,
    },
    Message {
        queue: QueueId,
        message: StoredMessage,
    },
    Meta {
        key: Arc<str>,
        value: Bytes,
    },
}

/// What a snapshot held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub queues: u64,
    pub messages: u64,
    pub meta: u64,
    /// One above the highest queue id ever created (dropped queues included).
    pub next_queue_id: QueueId,
}

impl Summary {
    pub(crate) fn count(&mut self, entry: &Entry) {
        match entry {
            Entry::Queue { .. } => self.queues += 1,
            Entry::Message { .. } => self.messages += 1,
            Entry::Meta { .. } => self.meta += 1,
        }
    }
}

/// Receives a snapshot. A store calls it on a thread of its own while no commit is applied, so
/// it should be quick (write to a local file, not to a network peer).
pub trait Sink: Send + 'static {
    /// One entry; an error ends the snapshot with it.
    fn entry(&mut self, entry: Entry) -> Result<(), StoreError>;
    /// Called once after the last entry, with what the store counted.
    fn finish(&mut self, summary: Summary) -> Result<(), StoreError>;
}

/// Writes a snapshot file to `W` (see the module docs for the format).
pub struct Writer<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    counted: Summary,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W) -> Result<Writer<W>, StoreError> {
        let mut crc = crc32fast::Hasher::new();
        let head = [&MAGIC[..], &[VERSION]].concat();
        out.write_all(&head).map_err(write_error)?;
        crc.update(&head);
        Ok(Writer {
            out,
            crc,
            counted: Summary::default(),
            buf: Vec::new(),
        })
    }

    /// The writer's destination, after [`Sink::finish`] flushed it.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn put(&mut self, tag: u8) -> Result<(), StoreError> {
        let len = u32::try_from(self.buf.len())
            .ok()
            .filter(|&n| n <= MAX_ENTRY)
            .ok_or_else(|| StoreError::Corrupt("a snapshot entry is over 1 GiB".into()))?;
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&len.to_be_bytes());
        self.crc.update(&head);
        self.crc.update(&self.buf);
        self.out.write_all(&head).map_err(write_error)?;
        self.out.write_all(&self.buf).map_err(write_error)
    }
}

impl<W: Write + Send + 'static> Sink for Writer<W> {
    fn entry(&mut self, entry: Entry) -> Result<(), StoreError> {
        self.counted.count(&entry);
        self.buf.clear();
        let b = &mut self.buf;
        let tag = match &entry {
            Entry::Queue {
                id,
                name,
                attrs,
                next_seq,
            } => {
                b.extend_from_slice(&id.to_be_bytes());
                b.extend_from_slice(&next_seq.to_be_bytes());
                put_bytes(b, name.as_bytes());
                put_bytes(b, attrs);
                TAG_QUEUE
            }
            Entry::Message { queue, message } => {
                let r = &message.record;
                b.extend_from_slice(&queue.to_be_bytes());
                b.extend_from_slice(&message.seq.to_be_bytes());
                b.extend_from_slice(&message.deliveries.to_be_bytes());
                b.extend_from_slice(&r.enqueued_at_ms.to_be_bytes());
                b.extend_from_slice(&r.expires_at_ms.unwrap_or(0).to_be_bytes());
                b.extend_from_slice(&(r.headers.len() as u32).to_be_bytes());
                for (k, v) in &r.headers {
                    put_bytes(b, k.as_bytes());
                    put_bytes(b, v.as_bytes());
                }
                put_bytes(b, &r.body);
                TAG_MESSAGE
            }
            Entry::Meta { key, value } => {
                put_bytes(b, key.as_bytes());
                put_bytes(b, value);
                TAG_META
            }
        };
        self.put(tag)
    }

    fn finish(&mut self, summary: Summary) -> Result<(), StoreError> {
        if !same_counts(&summary, &self.counted) {
            return Err(StoreError::Corrupt(format!(
                "the store reported {summary:?} but handed out {:?}",
                self.counted
            )));
        }
        self.buf.clear();
        for n in [
            summary.next_queue_id,
            summary.queues,
            summary.messages,
            summary.meta,
        ] {
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        let mut end = vec![TAG_END];
        end.extend_from_slice(&(self.buf.len() as u32 + 4).to_be_bytes());
        end.extend_from_slice(&self.buf);
        self.crc.update(&end);
        let crc = std::mem::take(&mut self.crc).finalize();
        end.extend_from_slice(&crc.to_be_bytes());
        self.out.write_all(&end).map_err(write_error)?;
        self.out.flush().map_err(write_error)
    }
}

fn same_counts(a: &Summary, b: &Summary) -> bool {
    (a.queues, a.messages, a.meta) == (b.queues, b.messages, b.meta)
}

fn write_error(e: io::Error) -> StoreError {
    StoreError::io("writing a snapshot", e)
}

fn put_bytes(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
    b.extend_from_slice(s);
}

/// Reads a snapshot file entry by entry. Only [`Reader::end`] says whether the file was whole:
/// entries read before it may come from a damaged file.
pub struct Reader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    counted: Summary,
    end: Option<Summary>,
    last: Last,
    /// The highest queue id read (0: none).
    highest: QueueId,
}

/// The last entry read, for [`Reader::check_order`].
enum Last {
    Start,
    Queue {
        id: QueueId,
        next_seq: u64,
        seq: Option<u64>,
    },
    Meta(Arc<str>),
}

/// Why a snapshot file is refused (a [`StoreError::Corrupt`] with this text).
fn damaged(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("not a whole Stampede snapshot: {what}"))
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> Result<Reader<R>, StoreError> {
        let mut head = [0u8; 18];
        input
            .read_exact(&mut head)
            .map_err(|_| damaged("it is shorter than the file header"))?;
        if &head[..17] != MAGIC {
            return Err(damaged("it does not start with STAMPEDE-SNAPSHOT"));
        }
        if head[17] != VERSION {
            return Err(StoreError::Corrupt(format!(
                "snapshot format version {} is not one this broker reads (it reads {VERSION})",
                head[17]
            )));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        Ok(Reader {
            input,
            crc,
            counted: Summary::default(),
            end: None,
            last: Last::Start,
            highest: 0,
        })
    }

    /// The next entry, or `None` after the end entry (which has then been checked).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, StoreError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let mut head = [0u8; 5];
        self.input
            .read_exact(&mut head)
            .map_err(|_| damaged("it ends before its end entry (truncated?)"))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_ENTRY {
            return Err(damaged(format!("an entry claims {len} bytes")));
        }
        // Grown as bytes arrive, not allocated from the claimed length: a short hostile file
        // cannot make us allocate a gigabyte.
        let mut payload = Vec::new();
        let got = (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut payload)
            .map_err(|e| StoreError::io("reading a snapshot", e))?;
        if got != len as usize {
            return Err(damaged("it ends inside an entry (truncated?)"));
        }
        self.crc.update(&head);
        if head[0] == TAG_END {
            self.check_end(&payload)?;
            let mut rest = [0u8; 1];
            return match self.input.read(&mut rest) {
                Ok(0) => Ok(None),
                _ => Err(damaged("it goes on after its end entry")),
            };
        }
        self.crc.update(&payload);
        let entry = decode(head[0], &payload)?;
        self.check_order(&entry)?;
        self.counted.count(&entry);
        Ok(Some(entry))
    }

    /// Entries come as stores hand them out: queues by increasing id, each followed by its own
    /// messages by increasing sequence number (below the queue's `next_seq`), metadata by
    /// increasing key after every queue. Anything else would restore as something other than
    /// what the file counts (a store ignores a message for a queue it does not hold).
    fn check_order(&mut self, entry: &Entry) -> Result<(), StoreError> {
        let ok = match (entry, &self.last) {
            (Entry::Queue { id, .. }, Last::Start) => *id > 0,
            (Entry::Queue { id, .. }, Last::Queue { id: prev, .. }) => id > prev,
            (Entry::Message { queue, message }, Last::Queue { id, next_seq, seq }) => {
                queue == id && seq.is_none_or(|s| message.seq > s) && message.seq < *next_seq
            }
            (Entry::Meta { .. }, Last::Start | Last::Queue { .. }) => true,
            (Entry::Meta { key, .. }, Last::Meta(prev)) => key > prev,
            _ => false,
        };
        if !ok {
            return Err(damaged("its entries are out of order"));
        }
        if let Entry::Queue { id, .. } = entry {
            self.highest = *id;
        }
        self.last = match entry {
            Entry::Queue { id, next_seq, .. } => Last::Queue {
                id: *id,
                next_seq: *next_seq,
                seq: None,
            },
            Entry::Message { message, .. } => match self.last {
                Last::Queue { id, next_seq, .. } => Last::Queue {
                    id,
                    next_seq,
                    seq: Some(message.seq),
                },
                _ => unreachable!("checked above"),
            },
            Entry::Meta { key, .. } => Last::Meta(key.clone()),
        };
        Ok(())
    }

    /// What the end entry says, once [`Reader::next_entry`] has returned `None`.
    pub fn end(&self) -> Option<Summary> {
        self.end
    }

    fn check_end(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        if payload.len() != 36 {
            return Err(damaged("its end entry has the wrong size"));
        }
        let n = |i: usize| u64::from_be_bytes(payload[i * 8..i * 8 + 8].try_into().unwrap());
        let stored_crc = u32::from_be_bytes(payload[32..36].try_into().unwrap());
        self.crc.update(&payload[..32]);
        if std::mem::take(&mut self.crc).finalize() != stored_crc {
            return Err(damaged(
                "its checksum does not match (damaged in transit or on disk?)",
            ));
        }
        let summary = Summary {
            next_queue_id: n(0),
            queues: n(1),
            messages: n(2),
            meta: n(3),
        };
        if summary.next_queue_id <= self.highest {
            return Err(damaged("its next queue id is not above its queues' ids"));
        }
        if !same_counts(&summary, &self.counted) {
            return Err(damaged(format!(
                "its end entry counts {summary:?}, its entries {:?}",
                self.counted
            )));
        }
        self.end = Some(summary);
        Ok(())
    }
}

/// Reads a payload's fields in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(damaged("an entry is shorter than its fields"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| damaged("a name is not UTF-8"))
    }

    fn done(self) -> Result<(), StoreError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(damaged("an entry is longer than its fields"))
        }
    }
}

fn decode(tag: u8, payload: &[u8]) -> Result<Entry, StoreError> {
    let mut f = Fields(payload);
    let entry = match tag {
        TAG_QUEUE => {
            let id = f.u64()?;
            let next_seq = f.u64()?;
            Entry::Queue {
                id,
                next_seq,
                name: Arc::from(f.string()?),
                attrs: Bytes::copy_from_slice(f.bytes()?),
            }
        }
        TAG_MESSAGE => {
            let queue = f.u64()?;
            let seq = f.u64()?;
            let deliveries = f.u32()?;
            let enqueued_at_ms = f.u64()?;
            let expires_at_ms = Some(f.u64()?).filter(|&t| t != 0);
            let count = f.u32()? as usize;
            // Each header takes at least 8 bytes, so a bogus count cannot allocate much.
            let mut headers = Vec::with_capacity(count.min(payload.len() / 8));
            for _ in 0..count {
                headers.push((f.string()?, f.string()?));
            }
            let body = Bytes::copy_from_slice(f.bytes()?);
            Entry::Message {
                queue,
                message: StoredMessage {
                    seq,
                    deliveries,
                    record: Arc::new(MessageRecord {
                        headers,
                        body,
                        enqueued_at_ms,
                        expires_at_ms,
                    }),
                },
            }
        }
        TAG_META => Entry::Meta {
            key: Arc::from(f.string()?),
            value: Bytes::copy_from_slice(f.bytes()?),
        },
        other => return Err(damaged(format!("unknown entry tag {other}"))),
    };
    f.done()?;
    Ok(entry)
}

/// Reads a whole snapshot file and checks it, writing nothing.
pub fn verify(input: impl Read) -> Result<Summary, StoreError> {
    let mut reader = Reader::new(input)?;
    while reader.next_entry()?.is_some() {}
    Ok(reader
        .end()
        .expect("next_entry returned None after the end entry"))
}

/// Ops per commit while restoring: big enough that a large backup is few rounds, small enough
/// that a round's batch stays a few MiB.
const RESTORE_BATCH_BYTES: u64 = 4 << 20;

/// Puts the snapshot `input` into `store`, which must hold nothing (no queue, no metadata).
/// Call [`verify`] on the same file first: entries are committed as they are read, so a file that
/// turns out damaged leaves a partly restored store. The reader is read synchronously.
pub async fn restore(input: impl Read, store: &dyn Store) -> Result<Summary, StoreError> {
    let before = store.recover(0)?;
    if !before.queues.is_empty() || !before.meta.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "the target already holds {} queues and {} metadata entries; restore into an empty \
             data directory",
            before.queues.len(),
            before.meta.len()
        )));
    }
    let mut reader = Reader::new(input)?;
    let mut ops = Vec::new();
    let mut bytes = 0u64;
    let mut highest = None;
    while let Some(entry) = reader.next_entry()? {
        match entry {
            Entry::Queue {
                id,
                name,
                attrs,
                next_seq,
            } => {
                highest = highest.max(Some(id));
                ops.push(Op::PutQueue {
                    id,
                    name,
                    attrs,
                    next_seq,
                });
            }
            Entry::Message { queue, message } => {
                bytes += message.record.size() as u64;
                let (seq, count) = (message.seq, message.deliveries);
                ops.push(Op::Put {
                    queue,
                    seq,
                    record: message.record,
                });
                if count > 0 {
                    ops.push(Op::SetDeliveries { queue, seq, count });
                }
            }
            Entry::Meta { key, value } => ops.push(Op::PutMeta { key, value }),
        }
        if bytes >= RESTORE_BATCH_BYTES || ops.len() >= 10_000 {
            store.commit(std::mem::take(&mut ops)).await?;
            bytes = 0;
        }
    }
    let summary = reader
        .end()
        .expect("the reader returned None after its end");
    // A queue created and dropped after the highest live one still used its id: create and drop
    // it again, so the restored store hands out ids above it.
    let last = summary.next_queue_id.saturating_sub(1);
    if last > 0 && highest.is_none_or(|h| h < last) {
        ops.push(Op::PutQueue {
            id: last,
            name: Arc::from(""),
            attrs: Bytes::new(),
            next_seq: 1,
        });
        ops.push(Op::DropQueue { id: last });
    }
    store.commit(ops).await?;
    store.flush().await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::Queue {
                id: 3,
                name: Arc::from("/queue/a"),
                attrs: Bytes::from_static(b"\x01attrs"),
                next_seq: 9,
            },
            Entry::Message {
                queue: 3,
                message: StoredMessage {
                    seq: 7,
                    deliveries: 2,
                    record: Arc::new(MessageRecord {
                        headers: vec![("k".into(), "v:é".into()), ("empty".into(), "".into())],
                        body: Bytes::from_static(b"\0binary\xff"),
                        enqueued_at_ms: 1_700_000_000_000,
                        expires_at_ms: Some(1_800_000_000_000),
                    }),
                },
            },
            Entry::Meta {
                key: Arc::from("binding/x"),
                value: Bytes::from_static(b"v"),
            },
        ]
    }

    fn file(entries: &[Entry], next_queue_id: u64) -> Vec<u8> {
        let mut w = Writer::new(Vec::new()).unwrap();
        for e in entries {
            w.entry(e.clone()).unwrap();
        }
        w.finish(Summary {
            queues: 1,
            messages: 1,
            meta: 1,
            next_queue_id,
        })
        .unwrap();
        w.into_inner()
    }

    #[test]
    fn entries_round_trip_through_a_file() {
        let bytes = file(&sample(), 5);
        let mut r = Reader::new(&bytes[..]).unwrap();
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            got.push(e);
        }
        assert_eq!(got, sample());
        assert_eq!(r.end().unwrap().next_queue_id, 5);
        assert_eq!(verify(&bytes[..]).unwrap().messages, 1);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = file(&sample(), 5);
        for cut in 0..bytes.len() {
            assert!(verify(&bytes[..cut]).is_err(), "cut at {cut} passed");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(verify(&bad[..]).is_err(), "flipped byte {i} passed");
        }
    }

    #[test]
    fn entries_out_of_order_or_bytes_after_the_end_are_refused() {
        let s = sample();
        let (queue, message, meta) = (&s[0], &s[1], &s[2]);
        let other_queue = Entry::Message {
            queue: 4,
            message: match message {
                Entry::Message { message, .. } => message.clone(),
                _ => unreachable!(),
            },
        };
        let orders: [Vec<Entry>; 4] = [
            vec![message.clone(), queue.clone(), meta.clone()],
            vec![queue.clone(), meta.clone(), message.clone()],
            vec![queue.clone(), other_queue, meta.clone()],
            vec![meta.clone(), queue.clone(), message.clone()],
        ];
        for (i, entries) in orders.iter().enumerate() {
            let e = verify(&file(entries, 5)[..]).unwrap_err().to_string();
            assert!(e.contains("out of order"), "order {i}: {e}");
        }
        let mut trailing = file(&s, 5);
        trailing.push(0);
        let e = verify(&trailing[..]).unwrap_err().to_string();
        assert!(e.contains("after its end"), "{e}");
        let e = verify(&file(&s, 3)[..]).unwrap_err().to_string();
        assert!(e.contains("next queue id"), "{e}");
    }

    #[test]
    fn a_writer_refuses_counts_that_disagree_with_its_entries() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.entry(sample()[0].clone()).unwrap();
        let e = w.finish(Summary::default()).unwrap_err();
        assert!(e.to_string().contains("handed out"), "{e}");
    }

    #[test]
    fn a_newer_format_is_named_not_misread() {
        let mut bytes = file(&sample(), 5);
        bytes[17] = 2;
        let e = verify(&bytes[..]).err().unwrap().to_string();
        assert!(e.contains("version 2"), "{e}");
    }
}
