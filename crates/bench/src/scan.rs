//! Zero-allocation scanner for the MESSAGE frames a consumer receives by the hundred thousand per
//! second. The project's decoder builds an owned `Headers` list per frame (two `String`s per
//! header); profiled in this tool, that was most of the consumer's CPU — CPU taken from the
//! broker on a shared machine. This scanner only locates the four headers a consumer needs and
//! the body, as ranges into the read buffer.
//!
//! It accepts only the plain case — a complete MESSAGE without escapes in the headers it reads —
//! and answers [`Scan::Other`] for everything else, which the caller hands to the full decoder.
//! So it never has to be right about an edge case: it just has to recognise one.

use std::ops::Range;

/// Header lines beyond this send the frame to the full decoder (which enforces the real limit).
const MAX_HEADERS: usize = 64;
/// A first line longer than this is not "MESSAGE"; let the full decoder report it.
const MAX_COMMAND_LINE: usize = 16;

/// Where the parts of one complete MESSAGE frame are in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAt {
    /// Bytes from the start of the buffer to just past the frame's NUL (leading EOLs included).
    pub len: usize,
    pub body: Range<usize>,
    pub ack: Option<Range<usize>>,
    pub message_id: Option<Range<usize>>,
    pub redelivered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The frame at the front is not complete yet.
    NeedMore,
    Message(MessageAt),
    /// Not a plain MESSAGE: decode it with the full decoder.
    Other,
}

/// Scans the frame at the front of `buf`.
pub fn scan(buf: &[u8]) -> Scan {
    let mut start = 0;
    // Heart-beat EOLs between frames.
    while start < buf.len() && (buf[start] == b'\n' || buf[start] == b'\r') {
        start += 1;
    }
    let Some(nl) = memchr::memchr(b'\n', &buf[start..]) else {
        return if buf.len() - start > MAX_COMMAND_LINE {
            Scan::Other
        } else {
            Scan::NeedMore
        };
    };
    if strip_cr(&buf[start..start + nl]) != b"MESSAGE" {
        return Scan::Other;
    }
    let mut pos = start + nl + 1;
    let mut content_length: Option<Range<usize>> = None;
    let (mut ack, mut message_id, mut redelivered) = (None, None, None);
    let mut lines = 0;
    let head_end = loop {
        let Some(i) = memchr::memchr(b'\n', &buf[pos..]) else {
            return Scan::NeedMore;
        };
        let end = pos + i;
        let line = strip_cr(&buf[pos..end]);
        if line.is_empty() {
            break end + 1;
        }
        lines += 1;
        if lines > MAX_HEADERS {
            return Scan::Other;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Scan::Other;
        };
        let value = pos + colon + 1..pos + line.len();
        // The first of repeated headers wins (STOMP 1.2).
        let slot = match &line[..colon] {
            b"content-length" => &mut content_length,
            b"ack" => &mut ack,
            b"message-id" => &mut message_id,
            b"redelivered" => &mut redelivered,
            _ => {
                pos = end + 1;
                continue;
            }
        };
        if slot.is_none() {
            if buf[value.clone()].contains(&b'\\') {
                return Scan::Other;
            }
            *slot = Some(value);
        }
        pos = end + 1;
    };
    let body_end = match content_length {
        Some(r) => {
            let Some(len) = parse_len(&buf[r]) else {
                return Scan::Other;
            };
            let Some(end) = head_end.checked_add(len) else {
                return Scan::Other;
            };
            match buf.get(end) {
                None => return Scan::NeedMore,
                Some(0) => end,
                Some(_) => return Scan::Other,
            }
        }
        None => match memchr::memchr(0, &buf[head_end..]) {
            Some(i) => head_end + i,
            None => return Scan::NeedMore,
        },
    };
    for r in [&ack, &message_id].into_iter().flatten() {
        if std::str::from_utf8(&buf[r.clone()]).is_err() {
            return Scan::Other;
        }
    }
    Scan::Message(MessageAt {
        len: body_end + 1,
        body: head_end..body_end,
        ack,
        message_id,
        redelivered: redelivered.is_some_and(|r| &buf[r] == b"true"),
    })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_len(raw: &[u8]) -> Option<usize> {
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

/// A range the scanner vouched for as UTF-8, as text.
pub fn text<'a>(buf: &'a [u8], r: &Range<usize>) -> &'a str {
    std::str::from_utf8(&buf[r.clone()]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use stampede_proto::{encode, Command, Decoder, Frame, Limits, Version};

    fn wire(f: &Frame) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode(f, Version::V1_2, &mut b);
        b.to_vec()
    }

    fn message(body: &[u8]) -> Frame {
        Frame::new(Command::Message)
            .header("destination", "/queue/q")
            .header("message-id", "m-17")
            .header("subscription", "0")
            .header("ack", "a-17")
            .header("redelivered", "true")
            .body(body.to_vec())
    }

    /// The scanner must agree with the project's decoder on every frame it accepts.
    fn agrees(bytes: &[u8]) {
        let Scan::Message(m) = scan(bytes) else {
            panic!("not scanned: {:?}", String::from_utf8_lossy(bytes))
        };
        let mut d = Decoder::new(Limits::default());
        d.set_version(Version::V1_2);
        let mut buf = BytesMut::from(bytes);
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(m.len, bytes.len() - buf.len());
        assert_eq!(&bytes[m.body.clone()], &f.body[..]);
        let get = |r: &Option<Range<usize>>| r.as_ref().map(|r| text(bytes, r));
        assert_eq!(get(&m.ack), f.headers.get("ack"));
        assert_eq!(get(&m.message_id), f.headers.get("message-id"));
        assert_eq!(m.redelivered, f.headers.get("redelivered") == Some("true"));
    }

    #[test]
    fn agrees_with_the_decoder_on_plain_messages() {
        agrees(&wire(&message(b"binary\0body")));
        agrees(&wire(&message(b"")));
        agrees(b"\n\r\nMESSAGE\r\nack:x\r\nack:second\r\n\r\nno length\0");
        agrees(b"MESSAGE\nredelivered:false\nmessage-id:7\n\nhello\0");
    }

    #[test]
    fn every_prefix_needs_more_and_the_next_frame_is_left_alone() {
        let one = wire(&message(b"0123456789"));
        for cut in 0..one.len() {
            assert_eq!(scan(&one[..cut]), Scan::NeedMore, "cut at {cut}");
        }
        let mut two = one.clone();
        two.extend_from_slice(&one);
        let Scan::Message(m) = scan(&two) else {
            panic!()
        };
        assert_eq!(m.len, one.len());
    }

    #[test]
    fn unusual_frames_go_to_the_full_decoder() {
        assert_eq!(scan(b"RECEIPT\nreceipt-id:1\n\n\0"), Scan::Other);
        assert_eq!(scan(b"ERROR\n"), Scan::Other);
        assert_eq!(scan(b"MESSAGE\nack:a\\cb\n\n\0"), Scan::Other);
        assert_eq!(scan(b"MESSAGE\nnocolon\n\n\0"), Scan::Other);
        assert_eq!(scan(b"MESSAGE\ncontent-length:x\n\n\0"), Scan::Other);
        assert_eq!(scan(b"MESSAGE\ncontent-length:1\n\nab\0"), Scan::Other);
        assert_eq!(scan(b"this is no stomp frame at all"), Scan::Other);
        // An escape in a header the scanner does not read is no reason to give up.
        agrees(b"MESSAGE\nx-note:a\\cb\nack:1\n\n\0");
    }
}
