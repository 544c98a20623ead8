//! Header value escaping per protocol version (STOMP 1.1 added `\\ \n \c`, 1.2 added `\r`; 1.0
//! has none). Undefined escapes are fatal in 1.1+ by the spec, which keeps us from guessing.

use bytes::BufMut;

use crate::{ProtoError, Version};

/// Unescapes one header name or value. Returns the input untouched when it has no backslash, so
/// the common case allocates once.
pub(crate) fn unescape(raw: &str, version: Version) -> Result<String, ProtoError> {
    if version == Version::V1_0 || !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('c') => out.push(':'),
            Some('r') if version == Version::V1_2 => out.push('\r'),
            _ => return Err(ProtoError::InvalidEscape(raw.to_owned())),
        }
    }
    Ok(out)
}

/// Appends `s` escaped for `version`. For 1.0, which has no escaping, line breaks are replaced by
/// spaces: a raw newline would let a header value inject frames into the stream.
pub(crate) fn escape_into(dst: &mut impl BufMut, s: &str, version: Version, escape: bool) {
    let needs = s.bytes().any(|b| matches!(b, b'\\' | b'\n' | b'\r' | b':'));
    if !needs {
        dst.put_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match (b, version, escape) {
            (b'\n' | b'\r', Version::V1_0, _) | (b'\n' | b'\r', _, false) => dst.put_u8(b' '),
            (_, Version::V1_0, _) | (_, _, false) => dst.put_u8(b),
            (b'\\', _, _) => dst.put_slice(b"\\\\"),
            (b'\n', _, _) => dst.put_slice(b"\\n"),
            (b':', _, _) => dst.put_slice(b"\\c"),
            (b'\r', Version::V1_2, _) => dst.put_slice(b"\\r"),
            (b'\r', _, _) => dst.put_u8(b' '),
            _ => dst.put_u8(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v12_round_trips_every_escape() {
        let raw = "a\\b\nc:d\re";
        let mut buf = Vec::new();
        escape_into(&mut buf, raw, Version::V1_2, true);
        assert_eq!(buf, b"a\\\\b\\nc\\cd\\re");
        let back = unescape(std::str::from_utf8(&buf).unwrap(), Version::V1_2).unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn v11_rejects_carriage_return_escape() {
        assert!(matches!(
            unescape("x\\ry", Version::V1_1),
            Err(ProtoError::InvalidEscape(_))
        ));
        assert_eq!(unescape("x\\cy", Version::V1_1).unwrap(), "x:y");
    }

    #[test]
    fn v10_is_literal() {
        assert_eq!(unescape("a\\nb", Version::V1_0).unwrap(), "a\\nb");
        let mut buf = Vec::new();
        escape_into(&mut buf, "a:b\nc", Version::V1_0, true);
        assert_eq!(buf, b"a:b c");
    }

    #[test]
    fn undefined_escape_is_an_error() {
        assert!(unescape("bad\\t", Version::V1_2).is_err());
        assert!(unescape("trailing\\", Version::V1_2).is_err());
    }
}
