//! Binary layout of keys and values in the messages tree.
//!
//! Keys: one tag byte, then big-endian numbers, so sled keeps a queue's messages in sequence order
//! and prefix-encodes them:
//! - `M qid seq` → a message record
//! - `D qid seq` → its delivery count (u32), written only once it is non-zero
//! - `Q qid`     → the queue's name
//! - `C qid`     → the queue's totals: stored messages (u64) and their bytes (u64)
//! - `S qid seq` → the segment (u64) holding the message's body, for bodies kept in segments
//! - `R`         → the number (u64) of the last commit round
//!
//! Values start with a version byte so the format can evolve.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{MessageRecord, StoreError};

pub const TAG_MESSAGE: u8 = b'M';
pub const TAG_DELIVERIES: u8 = b'D';
pub const TAG_QUEUE: u8 = b'Q';
pub const TAG_TOTALS: u8 = b'C';
pub const TAG_SEGMENT: u8 = b'S';
pub const ROUND_KEY: &[u8] = b"R";

const VERSION: u8 = 1;
const BODY_INLINE: u8 = 0;
const BODY_SEGMENT: u8 = 1;

pub fn message_key(tag: u8, qid: u64, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = tag;
    k[1..9].copy_from_slice(&qid.to_be_bytes());
    k[9..17].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn queue_key(tag: u8, qid: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..9].copy_from_slice(&qid.to_be_bytes());
    k
}

/// The queue id of a 9-byte `Q` or `C` key.
pub fn parse_queue_key(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
}

pub fn encode_totals(messages: u64, bytes: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&messages.to_be_bytes());
    v[8..].copy_from_slice(&bytes.to_be_bytes());
    v
}

pub fn decode_totals(v: &[u8]) -> Option<(u64, u64)> {
    Some((
        u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
        u64::from_be_bytes(v.get(8..16)?.try_into().ok()?),
    ))
}

/// Splits a 17-byte message or deliveries key into (qid, seq).
pub fn parse_message_key(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 17 {
        return None;
    }
    let qid = u64::from_be_bytes(k[1..9].try_into().ok()?);
    let seq = u64::from_be_bytes(k[9..17].try_into().ok()?);
    Some((qid, seq))
}

/// Where a body lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRef {
    Inline,
    Segment { id: u64, offset: u64, len: u32 },
}

/// Encodes `record`; with `BodyRef::Segment` the body bytes are not included.
pub fn encode_record(record: &MessageRecord, body: BodyRef) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(32 + record.size());
    b.put_u8(VERSION);
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
    if b.get_u8() != VERSION {
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
    }
}
