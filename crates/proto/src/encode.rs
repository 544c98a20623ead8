//! Frame encoder. Writes straight into the caller's buffer so a connection can pack many frames
//! into one write.

use bytes::{BufMut, BytesMut};

use crate::escape::escape_into;
use crate::{Command, Frame, Version};

/// Appends `frame` to `dst`, escaping headers for `version`. A `content-length` is added for every
/// non-empty body (so bodies may contain NULs) unless the frame already carries one.
pub fn encode(frame: &Frame, version: Version, dst: &mut BytesMut) {
    encode_head(
        frame.command,
        frame.headers.iter(),
        frame.body.len(),
        version,
        dst,
    );
    dst.extend_from_slice(&frame.body);
    dst.put_u8(0);
}

/// Appends the command line, headers and blank line of a frame whose body of `body_len` bytes the
/// caller writes next, followed by a NUL. Lets the server write MESSAGE frames from stored parts
/// without building a `Frame` first.
pub fn encode_head<'a>(
    command: Command,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body_len: usize,
    version: Version,
    dst: &mut BytesMut,
) {
    let escape = command.escapes_headers();
    let mut scratch = Vec::with_capacity(256);
    scratch.extend_from_slice(command.as_str().as_bytes());
    scratch.push(b'\n');
    let mut has_length = false;
    for (k, v) in headers {
        has_length |= k == "content-length";
        escape_into(&mut scratch, k, version, escape);
        scratch.push(b':');
        escape_into(&mut scratch, v, version, escape);
        scratch.push(b'\n');
    }
    if body_len > 0 && !has_length {
        scratch.extend_from_slice(b"content-length:");
        scratch.extend_from_slice(body_len.to_string().as_bytes());
        scratch.push(b'\n');
    }
    scratch.push(b'\n');
    dst.reserve(scratch.len() + body_len + 1);
    dst.extend_from_slice(&scratch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, Limits};

    #[test]
    fn body_with_nul_gets_content_length_and_round_trips() {
        let f = Frame::new(Command::Message)
            .header("destination", "/queue/a:b")
            .body(&b"x\0y"[..]);
        let mut buf = BytesMut::new();
        encode(&f, Version::V1_2, &mut buf);
        assert_eq!(
            &buf[..],
            b"MESSAGE\ndestination:/queue/a\\cb\ncontent-length:3\n\nx\0y\0"
        );
        let mut d = Decoder::new(Limits::default());
        d.set_version(Version::V1_2);
        let back = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(back.headers.get("destination"), Some("/queue/a:b"));
        assert_eq!(back.body, f.body);
    }

    #[test]
    fn connected_is_not_escaped() {
        let f = Frame::new(Command::Connected).header("server", "a:b");
        let mut buf = BytesMut::new();
        encode(&f, Version::V1_2, &mut buf);
        assert_eq!(&buf[..], b"CONNECTED\nserver:a:b\n\n\0");
    }
}
