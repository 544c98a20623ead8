//! Binary layout of keys and values in the one sled tree (`messages`) that holds everything, so a
//! single `sled::Batch` can make any commit atomic.
//!
//! Keys are one tag byte followed by big-endian numbers, so sled keeps a queue's messages in
//! sequence order and prefix-encodes them:
//! - `M id seq` → a message record (see [`encode_record`])
//! - `D id seq` → its delivery count (u32), written only once it is non-zero
//! - `S id seq` → the segment (u64) holding the message's body, for bodies kept in segments
//! - `Q id`     → the queue record: version byte `0x01`, name length (u32), name (UTF-8), attrs
//!   (the rest). Directories written before queue ids came from the broker hold the bare UTF-8
//!   name instead; a queue name never starts with a control byte, so the first byte tells them
//!   apart, and such a queue has empty attrs.
//! - `C id`     → the queue's totals: stored messages, their bytes and `next_seq` (3 × u64). Older
//!   directories hold only the first two; `next_seq` is then derived from the last `M` key.
//! - `X id`     → tombstone of a dropped queue whose `M`/`D`/`S` keys are still being swept
//!   (empty value). `Q id` and `C id` are removed in the same batch that writes it.
//! - `K key`    → metadata entry `key` (its UTF-8 bytes, so sled's byte order is key order).
//! - `N`        → one above the highest queue id ever created (u64), so dropped ids stay used.
//! - `R`        → the number (u64) of the last commit round (see `rounds`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use stampede_store::{MessageRecord, StoreError};

pub const TAG_MESSAGE: u8 = b'M';
pub const TAG_DELIVERIES: u8 = b'D';
pub const TAG_SEGMENT: u8 = b'S';
pub const TAG_QUEUE: u8 = b'Q';
pub const TAG_TOTALS: u8 = b'C';
pub const TAG_TOMBSTONE: u8 = b'X';
pub const TAG_META: u8 = b'K';
pub const NEXT_QUEUE_KEY: &[u8] = b"N";
pub const ROUND_KEY: &[u8] = b"R";

/// The per-message tags: every key a queue's messages own, which a drop must sweep.
pub const DATA_TAGS: [u8; 3] = [TAG_MESSAGE, TAG_DELIVERIES, TAG_SEGMENT];

const RECORD_VERSION: u8 = 1;
const QUEUE_VERSION: u8 = 1;
const BODY_INLINE: u8 = 0;
const BODY_SEGMENT: u8 = 1;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub fn message_key(tag: u8, id: u64, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = tag;
    k[1..9].copy_from_slice(&id.to_be_bytes());
    k[9..17].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn queue_key(tag: u8, id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..9].copy_from_slice(&id.to_be_bytes());
    k
}

/// The queue id of a 9-byte `Q`, `C` or `X` key.
pub fn parse_queue_key(k: &[u8]) -> Option<u64> {
    if k.len() != 9 {
        return None;
    }
    Some(u64::from_be_bytes(k[1..9].try_into().ok()?))
}

/// Splits a 17-byte `M`, `D` or `S` key into (id, seq).
pub fn parse_message_key(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 17 {
        return None;
    }
    let id = u64::from_be_bytes(k[1..9].try_into().ok()?);
    let seq = u64::from_be_bytes(k[9..17].try_into().ok()?);
    Some((id, seq))
}

pub fn meta_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(TAG_META);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn parse_meta_key(k: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(k.get(1..).unwrap_or_default()).map_err(|_| corrupt("metadata key"))
}

pub fn decode_u64(v: &[u8], what: &str) -> Result<u64, StoreError> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(what))
}

/// A queue's stored totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub messages: u64,
    pub bytes: u64,
    /// `None` in the older 16-byte form, which did not keep it.
    pub next_seq: Option<u64>,
}

pub fn encode_totals(messages: u64, bytes: u64, next_seq: u64) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(&messages.to_be_bytes());
    v[8..16].copy_from_slice(&bytes.to_be_bytes());
    v[16..].copy_from_slice(&next_seq.to_be_bytes());
    v
}

pub fn decode_totals(v: &[u8]) -> Result<Totals, StoreError> {
    let word = |i: usize| decode_u64(&v[i * 8..i * 8 + 8], "queue totals");
    match v.len() {
        16 | 24 => Ok(Totals {
            messages: word(0)?,
            bytes: word(1)?,
            next_seq: if v.len() == 24 { Some(word(2)?) } else { None },
        }),
        _ => Err(corrupt("queue totals")),
    }
}

pub fn encode_queue(name: &str, attrs: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + name.len() + attrs.len());
    v.push(QUEUE_VERSION);
    v.extend_from_slice(&(name.len() as u32).to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(attrs);
    v
}

/// Decodes a queue record, current or older (see the module docs): (name, attrs).
pub fn decode_queue(v: &[u8]) -> Result<(String, Bytes), StoreError> {
    match v.first() {
        Some(&QUEUE_VERSION) => {
            let mut b = &v[1..];
            let name = take_str(&mut b).ok_or_else(|| corrupt("queue record"))?;
            Ok((name, Bytes::copy_from_slice(b)))
        }
        Some(&first) if first < 0x20 => Err(corrupt("queue record: unknown version")),
        _ => {
            let name = String::from_utf8(v.to_vec()).map_err(|_| corrupt("queue name"))?;
            Ok((name, Bytes::new()))
        }
    }
}

/// Where a body lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRef {
    Inline,
    Segment { id: u64, offset: u64, len: u32 },
}

/// Encodes `record`; with `BodyRef::Segment` the body bytes are not included. An expiry of 0
/// reads back as none.
pub fn encode_record(record: &MessageRecord, body: BodyRef) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(32 + record.size());
    b.put_u8(RECORD_VERSION);
    b.put_u64(record.enqueued_at_ms);
    b.put_u64(record.expires_at_ms.unwrap_or(0));
    b.put_u32(record.headers.len() as u32);
    for (k, v) in &record.headers {
        b.put_u32(k.len() as u32);
        b.put_slice(k.as_bytes());
        b.put_u32(v.len() as u32);
        b.put_slice(v.as_bytes());
    }
    match body {
        BodyRef::Inline => {
            b.put_u8(BODY_INLINE);
            b.put_u32(record.body.len() as u32);
            b.put_slice(&record.body);
        }
        BodyRef::Segment { id, offset, len } => {
            b.put_u8(BODY_SEGMENT);
            b.put_u64(id);
            b.put_u64(offset);
            b.put_u32(len);
        }
    }
    b.to_vec()
}

/// Decodes a record. For a segment body the returned record's body is empty and the reference
/// says where to read it.
pub fn decode_record(raw: &[u8]) -> Result<(MessageRecord, BodyRef), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("message record: {what}"));
    let mut b = raw;
    let need = |b: &[u8], n: usize| {
        if b.remaining() < n {
            Err(corrupt("truncated"))
        } else {
            Ok(())
        }
    };
    need(b, 1 + 8 + 8 + 4)?;
    if b.get_u8() != RECORD_VERSION {
        return Err(corrupt("unknown version"));
    }
    let enqueued_at_ms = b.get_u64();
    let expires = b.get_u64();
    let n = b.get_u32() as usize;
    let mut headers = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let k = take_str(&mut b).ok_or_else(|| corrupt("bad header name"))?;
        let v = take_str(&mut b).ok_or_else(|| corrupt("bad header value"))?;
        headers.push((k, v));
    }
    need(b, 1)?;
    let (body, body_ref) = match b.get_u8() {
        BODY_INLINE => {
            need(b, 4)?;
            let len = b.get_u32() as usize;
            need(b, len)?;
            (Bytes::copy_from_slice(&b[..len]), BodyRef::Inline)
        }
        BODY_SEGMENT => {
            need(b, 20)?;
            let id = b.get_u64();
            let offset = b.get_u64();
            let len = b.get_u32();
            (Bytes::new(), BodyRef::Segment { id, offset, len })
        }
        _ => return Err(corrupt("unknown body kind")),
    };
    let record = MessageRecord {
        headers,
        body,
        enqueued_at_ms,
        expires_at_ms: (expires > 0).then_some(expires),
    };
    Ok((record, body_ref))
}

fn take_str(b: &mut &[u8]) -> Option<String> {
    if b.remaining() < 4 {
        return None;
    }
    let len = b.get_u32() as usize;
    if b.remaining() < len {
        return None;
    }
    let s = String::from_utf8(b[..len].to_vec()).ok()?;
    b.advance(len);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MessageRecord {
        MessageRecord {
            headers: vec![("a".into(), "1".into()), ("b:c".into(), "x\ny".into())],
            body: Bytes::from_static(b"bo\0dy"),
            enqueued_at_ms: 42,
            expires_at_ms: Some(99),
        }
    }

    #[test]
    fn inline_and_segment_records_round_trip() {
        let r = record();
        let (back, body) = decode_record(&encode_record(&r, BodyRef::Inline)).unwrap();
        assert_eq!((back, body), (r.clone(), BodyRef::Inline));
        let seg = BodyRef::Segment {
            id: 3,
            offset: 1 << 33,
            len: 5,
        };
        let (back, body) = decode_record(&encode_record(&r, seg)).unwrap();
        assert_eq!(body, seg);
        assert!(back.body.is_empty());
        assert_eq!(back.headers, r.headers);
    }

    #[test]
    fn truncated_or_unknown_records_are_corrupt_not_panics() {
        let raw = encode_record(&record(), BodyRef::Inline);
        for cut in 0..raw.len() {
            assert!(decode_record(&raw[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = raw.clone();
        bad[0] = 9;
        assert!(decode_record(&bad).is_err());
    }

    #[test]
    fn keys_sort_by_queue_then_sequence() {
        let a = message_key(TAG_MESSAGE, 1, 255);
        let b = message_key(TAG_MESSAGE, 1, 256);
        let c = message_key(TAG_MESSAGE, 2, 0);
        assert!(a < b && b < c);
        assert_eq!(parse_message_key(&b), Some((1, 256)));
        assert_eq!(parse_queue_key(&queue_key(TAG_TOMBSTONE, 7)), Some(7));
        assert_eq!(parse_queue_key(&b), None);
    }

    #[test]
    fn queue_records_of_both_formats_decode() {
        let v = encode_queue("orders/é", b"\0attrs");
        assert_eq!(
            decode_queue(&v).unwrap(),
            ("orders/é".to_owned(), Bytes::from_static(b"\0attrs"))
        );
        assert_eq!(
            decode_queue(b"legacy").unwrap(),
            ("legacy".to_owned(), Bytes::new())
        );
        assert_eq!(decode_queue(b"").unwrap(), (String::new(), Bytes::new()));
        assert!(decode_queue(&v[..3]).is_err(), "truncated name length");
        assert!(decode_queue(b"\x02x").is_err(), "unknown version");
        assert!(decode_queue(b"\xff").is_err(), "not UTF-8");
    }

    #[test]
    fn totals_of_both_formats_decode() {
        let t = decode_totals(&encode_totals(3, 40, 9)).unwrap();
        assert_eq!((t.messages, t.bytes, t.next_seq), (3, 40, Some(9)));
        let old = &encode_totals(3, 40, 9)[..16];
        assert_eq!(decode_totals(old).unwrap().next_seq, None);
        assert!(decode_totals(&[0; 8]).is_err());
    }

    #[test]
    fn meta_keys_keep_their_order_and_text() {
        let mut keys = ["b", "a/b", "a", "é", "ab"];
        let mut encoded: Vec<Vec<u8>> = keys.iter().map(|k| meta_key(k)).collect();
        keys.sort();
        encoded.sort();
        let back: Vec<&str> = encoded.iter().map(|k| parse_meta_key(k).unwrap()).collect();
        assert_eq!(back, keys);
        assert!(parse_meta_key(b"K\xff").is_err());
    }
}
