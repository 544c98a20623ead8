//! A check that sled gave back everything it confirmed. sled 0.34 recovers a damaged or
//! truncated log by cutting it short at the first bad record, silently — a store that then starts
//! with fewer messages than it had confirmed. So every commit round writes its number into the
//! batch, and the committer also records it in this small file beside the database (rewritten in
//! place each round, fsynced at most once a second and at shutdown). At open, a database that
//! holds an older round than the file recorded has lost confirmed data.
//!
//! The file never runs ahead of sled (it is written after the round's flush), so a stale file after
//! a power loss only weakens the check; it cannot raise a false alarm.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

const MAGIC: u64 = 0x5354_414d_5045_4445; // "STAMPEDE"
const SYNC_EVERY: Duration = Duration::from_secs(1);

pub struct RoundLog {
    file: File,
    last_sync: Instant,
    dirty: bool,
}

impl RoundLog {
    /// Opens (or creates) the file; returns the round it recorded, if it holds a valid one.
    pub fn open(path: &Path) -> std::io::Result<(RoundLog, Option<u64>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut buf = [0u8; 16];
        let recorded = match file.read_exact_at(&mut buf, 0) {
            Ok(()) => decode(&buf),
            Err(_) => None,
        };
        let log = RoundLog {
            file,
            last_sync: Instant::now(),
            dirty: false,
        };
        Ok((log, recorded))
    }

    /// Records that `round` is durable in sled.
    pub fn record(&mut self, round: u64) -> std::io::Result<()> {
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&round.to_be_bytes());
        buf[8..].copy_from_slice(&(round ^ MAGIC).to_be_bytes());
        self.file.write_all_at(&buf, 0)?;
        self.dirty = true;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}

fn decode(buf: &[u8; 16]) -> Option<u64> {
    let round = u64::from_be_bytes(buf[..8].try_into().ok()?);
    let check = u64::from_be_bytes(buf[8..].try_into().ok()?);
    (round ^ MAGIC == check).then_some(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_reads_back_and_ignores_a_torn_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rounds");
        let (mut log, before) = RoundLog::open(&path).unwrap();
        assert_eq!(before, None);
        log.record(41).unwrap();
        log.record(42).unwrap();
        log.sync().unwrap();
        drop(log);
        assert_eq!(RoundLog::open(&path).unwrap().1, Some(42));
        std::fs::write(&path, [1u8; 16]).unwrap();
        assert_eq!(RoundLog::open(&path).unwrap().1, None);
    }
}
