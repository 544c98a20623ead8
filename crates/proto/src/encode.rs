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
/// caller writes next, followed by the NUL octet. Lets the server write MESSAGE frames from stored
/// parts without building a `Frame` first.
pub fn encode_head<'a>(
    command: Command,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body_len: usize,
    version: Version,
    dst: &mut BytesMut,
) {
    let escape = command.escapes_headers();
    dst.reserve(256);
    dst.extend_from_slice(command.as_str().as_bytes());
    dst.put_u8(b'\n');
    let mut has_length = false;
    for (k, v) in headers {
        has_length |= k == "content-length";
        escape_into(dst, k, version, escape);
        dst.put_u8(b':');
        escape_into(dst, v, version, escape);
        dst.put_u8(b'\n');
    }
    if body_len > 0 && !has_length {
        dst.extend_from_slice(b"content-length:");
        dst.extend_from_slice(itoa(body_len, &mut [0u8; 20]));
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
}

/// `n` in decimal, without allocating.
fn itoa(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
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
