//! The stamp every benchmark message carries at the start of its body: which run and producer sent
//! it, its sequence number and when it was (meant to be) sent. It lives in the body, not in a
//! header, so a 20-byte message is 20 bytes on every broker and no broker can drop or rewrite it.

/// Bytes the stamp occupies; also the smallest `--size` the tool accepts.
pub const STAMP_LEN: usize = 20;

/// Identity and send time of one message, little-endian on the wire:
/// run (u16), producer (u16), sequence (u64), send time in ns since the run's epoch (u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Random per invocation, so leftovers of an earlier run on the same destination are told apart
    /// from this run's messages instead of being counted as duplicates.
    pub run: u16,
    pub producer: u16,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Stamp {
    pub fn write(&self, dst: &mut [u8; STAMP_LEN]) {
        dst[0..2].copy_from_slice(&self.run.to_le_bytes());
        dst[2..4].copy_from_slice(&self.producer.to_le_bytes());
        dst[4..12].copy_from_slice(&self.seq.to_le_bytes());
        dst[12..20].copy_from_slice(&self.sent_ns.to_le_bytes());
    }

    /// `None` when the body is too short to hold a stamp (not a message of this tool).
    pub fn read(body: &[u8]) -> Option<Stamp> {
        let b: &[u8; STAMP_LEN] = body.get(..STAMP_LEN)?.try_into().ok()?;
        Some(Stamp {
            run: u16::from_le_bytes([b[0], b[1]]),
            producer: u16::from_le_bytes([b[2], b[3]]),
            seq: u64::from_le_bytes(b[4..12].try_into().ok()?),
            sent_ns: u64::from_le_bytes(b[12..20].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_short_bodies() {
        let s = Stamp {
            run: 0xBEEF,
            producer: 7,
            seq: u64::MAX - 1,
            sent_ns: 123_456_789,
        };
        let mut buf = [0u8; STAMP_LEN];
        s.write(&mut buf);
        let mut body = buf.to_vec();
        body.extend_from_slice(b"padding");
        assert_eq!(Stamp::read(&body), Some(s));
        assert_eq!(Stamp::read(&body[..STAMP_LEN - 1]), None);
    }
}
