//! Incremental frame decoder. It is fed whatever the socket produced and returns a frame once one
//! is complete; "need more bytes" is `Ok(None)`, never an error. Limits are checked while bytes
//! arrive, so an oversized frame is rejected before it is buffered whole.
//!
//! The decoder remembers how far it has scanned, so a large body trickling in is scanned once, not
//! once per read.

use bytes::{Buf, Bytes, BytesMut};

use crate::escape::unescape;
use crate::{Command, Frame, Headers, ProtoError, Version};

/// Size limits enforced while decoding (docs/behaviour.md "Protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Command line, headers and body together.
    pub max_frame_size: usize,
    /// Header lines after the command line.
    pub max_headers: usize,
    /// Bytes in one command or header line, line break excluded.
    pub max_header_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 4 * 1024 * 1024,
            max_headers: 128,
            max_header_line: 8 * 1024,
        }
    }
}

/// Where the decoder is inside the frame at the front of the buffer.
#[derive(Debug)]
enum State {
    /// Looking for the blank line that ends the head; `line_start` is the start of the line not yet
    /// terminated, `lines` the lines seen so far (command included).
    Head { line_start: usize, lines: usize },
    /// The head (`head_len` bytes) is parsed; waiting for the body.
    Body {
        command: Command,
        headers: Headers,
        head_len: usize,
        content_length: Option<usize>,
        /// For NUL-terminated bodies: bytes of body already searched for the NUL.
        scanned: usize,
    },
}

/// Stateful STOMP decoder; one per connection.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    version: Version,
    state: State,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            version: Version::V1_0,
            state: State::Head {
                line_start: 0,
                lines: 0,
            },
        }
    }

    /// Header unescaping follows the negotiated version; until CONNECT is done it is 1.0 (none).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes the next frame from the front of `buf`, consuming its bytes. Heart-beat line ends
    /// between frames are consumed silently.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        loop {
            match &mut self.state {
                State::Head { line_start, lines } => {
                    if *lines == 0 && *line_start == 0 && skip_heartbeats(buf) {
                        return Ok(None);
                    }
                    let Some(head_len) = scan_head(buf, line_start, lines, &self.limits)? else {
                        return Ok(None);
                    };
                    let (command, headers) = parse_head(&buf[..head_len], self.version)?;
                    let content_length = content_length(&headers, &self.limits)?;
                    // Head plus declared body over the limit: refuse now, not once the body is in.
                    if head_len + content_length.unwrap_or(0) > self.limits.max_frame_size {
                        return Err(ProtoError::FrameTooLarge {
                            limit: self.limits.max_frame_size,
                        });
                    }
                    self.state = State::Body {
                        command,
                        headers,
                        head_len,
                        content_length,
                        scanned: 0,
                    };
                }
                State::Body { .. } => return self.decode_body(buf),
            }
        }
    }

    fn decode_body(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        let State::Body {
            head_len,
            content_length,
            scanned,
            ..
        } = &mut self.state
        else {
            unreachable!("decode_body is only called in the Body state");
        };
        let head_len = *head_len;
        let body_len = match *content_length {
            Some(len) => {
                if buf.len() < head_len + len + 1 {
                    return Ok(None);
                }
                if buf[head_len + len] != 0 {
                    return Err(ProtoError::MissingNul);
                }
                len
            }
            None => {
                let from = head_len + *scanned;
                match memchr::memchr(0, &buf[from..]) {
                    Some(i) => *scanned + i,
                    None => {
                        *scanned = buf.len() - head_len;
                        if buf.len() > self.limits.max_frame_size {
                            return Err(ProtoError::FrameTooLarge {
                                limit: self.limits.max_frame_size,
                            });
                        }
                        return Ok(None);
                    }
                }
            }
        };
        if head_len + body_len > self.limits.max_frame_size {
            return Err(ProtoError::FrameTooLarge {
                limit: self.limits.max_frame_size,
            });
        }
        let state = std::mem::replace(
            &mut self.state,
            State::Head {
                line_start: 0,
                lines: 0,
            },
        );
        let State::Body {
            command, headers, ..
        } = state
        else {
            unreachable!("state was Body above");
        };
        buf.advance(head_len);
        let body: Bytes = buf.split_to(body_len).freeze();
        buf.advance(1);
        Ok(Some(Frame {
            command,
            headers,
            body,
        }))
    }
}

/// Drops EOLs that precede a frame (heart-beats). Returns true when the buffer is exhausted or ends
/// in a lone `\r` that needs its `\n`.
fn skip_heartbeats(buf: &mut BytesMut) -> bool {
    let mut n = 0;
    while n < buf.len() {
        match buf[n] {
            b'\n' => n += 1,
            b'\r' if n + 1 < buf.len() && buf[n + 1] == b'\n' => n += 2,
            b'\r' if n + 1 == buf.len() => break,
            _ => break,
        }
    }
    buf.advance(n);
    buf.is_empty() || (buf.len() == 1 && buf[0] == b'\r')
}

/// Bytes in the longest command name (`UNSUBSCRIBE`).
const LONGEST_COMMAND: usize = 11;

/// Finds the end of the head (the byte after the blank line), checking line and header-count limits
/// as lines complete. Resumes from `line_start`/`lines` so bytes are scanned once.
fn scan_head(
    buf: &[u8],
    line_start: &mut usize,
    lines: &mut usize,
    limits: &Limits,
) -> Result<Option<usize>, ProtoError> {
    loop {
        let Some(i) = memchr::memchr(b'\n', &buf[*line_start..]) else {
            // A first line longer than any command (plus its CR) cannot become one: refuse now, so
            // a client speaking another protocol (TLS, binary noise) gets its ERROR at once
            // instead of after the connect timeout.
            if *lines == 0 && buf.len() - *line_start > LONGEST_COMMAND + 1 {
                return Err(unknown_command(&buf[*line_start..]));
            }
            if buf.len() - *line_start > limits.max_header_line {
                return Err(ProtoError::HeaderLineTooLong {
                    limit: limits.max_header_line,
                });
            }
            return Ok(None);
        };
        let end = *line_start + i;
        let line = strip_cr(&buf[*line_start..end]);
        // Likewise the command line is checked as soon as it ends, not once the head is complete
        // (which for noise may be never).
        if *lines == 0 && Command::parse(line).is_none() {
            return Err(unknown_command(line));
        }
        if line.len() > limits.max_header_line {
            return Err(ProtoError::HeaderLineTooLong {
                limit: limits.max_header_line,
            });
        }
        *line_start = end + 1;
        if line.is_empty() && *lines > 0 {
            return Ok(Some(*line_start));
        }
        *lines += 1;
        if *lines > limits.max_headers + 1 {
            return Err(ProtoError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        if *line_start > limits.max_frame_size {
            return Err(ProtoError::FrameTooLarge {
                limit: limits.max_frame_size,
            });
        }
    }
}

/// The error for a line that is no command. Quotes at most 32 bytes: the text becomes an ERROR
/// header, which must stay readable by clients with small header-line limits.
fn unknown_command(line: &[u8]) -> ProtoError {
    ProtoError::UnknownCommand(String::from_utf8_lossy(&line[..line.len().min(32)]).into_owned())
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_head(head: &[u8], version: Version) -> Result<(Command, Headers), ProtoError> {
    let mut lines = head.split(|b| *b == b'\n').map(strip_cr);
    let cmd_line = lines.next().unwrap_or_default();
    let command = Command::parse(cmd_line).ok_or_else(|| {
        ProtoError::UnknownCommand(String::from_utf8_lossy(cmd_line).into_owned())
    })?;
    let version = if command.escapes_headers() {
        version
    } else {
        Version::V1_0
    };
    let mut headers = Headers::with_capacity(8);
    for line in lines.filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(line).map_err(|_| ProtoError::InvalidUtf8)?;
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| ProtoError::MalformedHeader(text.to_owned()))?;
        headers.push(unescape(name, version)?, unescape(value, version)?);
    }
    Ok((command, headers))
}

fn content_length(headers: &Headers, limits: &Limits) -> Result<Option<usize>, ProtoError> {
    let Some(raw) = headers.get("content-length") else {
        return Ok(None);
    };
    let len: usize = raw
        .trim()
        .parse()
        .map_err(|_| ProtoError::InvalidContentLength(raw.to_owned()))?;
    if len > limits.max_frame_size {
        return Err(ProtoError::FrameTooLarge {
            limit: limits.max_frame_size,
        });
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], version: Version) -> Result<Vec<Frame>, ProtoError> {
        let mut d = Decoder::new(Limits::default());
        d.set_version(version);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn frame_split_at_every_offset_decodes_identically() {
        let wire: &[u8] =
            b"\n\r\nSEND\r\ndestination:/queue/a\r\ncontent-length:5\r\n\r\na\0b\0c\0\nMESSAGE\nx:y\n\nhello\0";
        let whole = decode_all(wire, Version::V1_2).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(&whole[0].body[..], b"a\0b\0c");
        assert_eq!(whole[1].headers.get("x"), Some("y"));
        for cut in 0..wire.len() {
            let mut d = Decoder::new(Limits::default());
            d.set_version(Version::V1_2);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut out = Vec::new();
            while let Some(f) = d.decode(&mut buf).unwrap() {
                out.push(f);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                out.push(f);
            }
            assert_eq!(out, whole, "split at {cut}");
        }
    }

    #[test]
    fn first_repeated_header_wins() {
        let f = decode_all(b"SEND\nfoo:1\nfoo:2\n\n\0", Version::V1_2).unwrap();
        assert_eq!(f[0].headers.get("foo"), Some("1"));
        assert_eq!(f[0].headers.len(), 2);
    }

    #[test]
    fn connect_headers_are_never_unescaped() {
        let f = decode_all(b"CONNECT\npasscode:a\\nb\n\n\0", Version::V1_2).unwrap();
        assert_eq!(f[0].headers.get("passcode"), Some("a\\nb"));
    }

    #[test]
    fn escapes_follow_the_negotiated_version() {
        let wire = b"SEND\nk:a\\cb\n\n\0";
        assert_eq!(
            decode_all(wire, Version::V1_1).unwrap()[0].headers.get("k"),
            Some("a:b")
        );
        assert_eq!(
            decode_all(wire, Version::V1_0).unwrap()[0].headers.get("k"),
            Some("a\\cb")
        );
    }

    #[test]
    fn limits_are_typed_errors() {
        let limits = Limits {
            max_frame_size: 64,
            max_headers: 2,
            max_header_line: 20,
        };
        type Check = fn(&ProtoError) -> bool;
        let cases: [(&[u8], Check); 4] = [
            (b"SEND\na:1\nb:2\nc:3\n\n\0", |e| {
                matches!(e, ProtoError::TooManyHeaders { limit: 2 })
            }),
            (b"SEND\naaaaaaaaaaaaaaaaaaaaaaaa:1\n", |e| {
                matches!(e, ProtoError::HeaderLineTooLong { limit: 20 })
            }),
            (b"SEND\ncontent-length:65\n\n", |e| {
                matches!(e, ProtoError::FrameTooLarge { limit: 64 })
            }),
            (&[b"SEND\n\n".as_slice(), &[b'x'; 70]].concat(), |e| {
                matches!(e, ProtoError::FrameTooLarge { limit: 64 })
            }),
        ];
        for (wire, check) in cases {
            let mut d = Decoder::new(limits);
            let err = d.decode(&mut BytesMut::from(wire)).unwrap_err();
            assert!(
                check(&err),
                "{err:?} for {:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn head_plus_content_length_over_the_limit_fails_before_the_body() {
        // Regression (proptest `oversized_frames_are_refused_early`): each part alone is within
        // the limit, so the decoder used to wait for the whole body before refusing the frame.
        let limits = Limits {
            max_frame_size: 64,
            max_headers: 8,
            max_header_line: 64,
        };
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::from(&b"SEND\ncontent-length:60\nh:vvvvvvvvvv\n\n"[..]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtoError::FrameTooLarge { limit: 64 })
        ));
        // A frame of exactly the limit (NUL excluded) still decodes.
        let mut d = Decoder::new(limits);
        let head = b"SEND\ncontent-length:40\n\n";
        let mut buf = BytesMut::from(&head[..]);
        buf.extend_from_slice(&[b'x'; 40]);
        buf.extend_from_slice(b"\0");
        assert_eq!(head.len() + 40, 64);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap().body.len(), 40);
    }

    #[test]
    fn header_line_limit_applies_before_the_newline_arrives() {
        let limits = Limits {
            max_header_line: 16,
            ..Limits::default()
        };
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::from(&b"SEND\nkey:"[..]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[b'v'; 32]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtoError::HeaderLineTooLong { .. })
        ));
    }

    #[test]
    fn a_line_that_is_no_command_fails_before_the_head_ends() {
        // Regression (e2e `garbage_as_the_first_frame_is_an_unknown_command`): noise without a
        // blank line used to be buffered until the connect timeout.
        let mut d = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"\x16\x03\x01\nmore"[..]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtoError::UnknownCommand(_))
        ));
        let mut d = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"UNSUBSCRIBE\r"[..]);
        assert!(
            d.decode(&mut buf).unwrap().is_none(),
            "a command may still arrive"
        );
        buf.extend_from_slice(b"x");
        assert!(matches!(d.decode(&mut buf), Err(ProtoError::UnknownCommand(c)) if c.len() == 13));
    }

    #[test]
    fn malformed_input_errors() {
        assert!(matches!(
            decode_all(b"FOO\n\n\0", Version::V1_2),
            Err(ProtoError::UnknownCommand(c)) if c == "FOO"
        ));
        assert!(matches!(
            decode_all(b"SEND\nnocolon\n\n\0", Version::V1_2),
            Err(ProtoError::MalformedHeader(_))
        ));
        assert!(matches!(
            decode_all(b"SEND\ncontent-length:2\n\nabc\0", Version::V1_2),
            Err(ProtoError::MissingNul)
        ));
        assert!(matches!(
            decode_all(b"SEND\ncontent-length:x\n\n\0", Version::V1_2),
            Err(ProtoError::InvalidContentLength(_))
        ));
        assert!(matches!(
            decode_all(b"SEND\nk:\xff\n\n\0", Version::V1_2),
            Err(ProtoError::InvalidUtf8)
        ));
    }
}
