//! Append-only segment files for large bodies. They are kept out of sled because sled 0.34 stores
//! values over ~128 KiB as one blob file each and does not reclaim them under churn (measured: 8 GB
//! on disk for 25 MB of live data). sled holds only a `(segment, offset, len)` reference. A segment
//! file is deleted once no stored message refers to it and it is no longer the one being appended
//! to, so disk use follows live data.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::codec::BodyRef;

/// Roll to a new file past this size, so a drained segment can be deleted while newer ones live.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

struct Active {
    id: u64,
    file: File,
    len: u64,
}

pub struct Segments {
    dir: PathBuf,
    active: Option<Active>,
    next_id: u64,
    /// Messages stored per segment.
    live: HashMap<u64, u64>,
    /// Which segment holds the body of (queue id, seq).
    owner: HashMap<(u64, u64), u64>,
    /// Appended since the last sync.
    dirty: bool,
    /// Segments no message refers to any more, to delete once the deletes that emptied them are
    /// durable (deleting earlier could leave a record pointing at a missing file after a crash).
    emptied: Vec<u64>,
}

impl Segments {
    pub fn open(dir: &Path) -> std::io::Result<Segments> {
        std::fs::create_dir_all(dir)?;
        let mut max = 0;
        for entry in std::fs::read_dir(dir)? {
            if let Some(id) = parse_name(&entry?.file_name().to_string_lossy()) {
                max = max.max(id);
            }
        }
        Ok(Segments {
            dir: dir.to_owned(),
            active: None,
            next_id: max + 1,
            live: HashMap::new(),
            owner: HashMap::new(),
            dirty: false,
            emptied: Vec::new(),
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(segment_name(id))
    }

    /// Appends a body; durable only after the next [`Segments::sync`].
    pub fn append(&mut self, qid: u64, seq: u64, body: &[u8]) -> std::io::Result<BodyRef> {
        let roll = self
            .active
            .as_ref()
            .is_none_or(|a| a.len > 0 && a.len + body.len() as u64 > SEGMENT_BYTES);
        if roll {
            self.roll()?;
        }
        let Some(active) = self.active.as_mut() else {
            unreachable!("roll() leaves an active segment");
        };
        if let Err(e) = active.file.write_all(body) {
            // Cut off a partial write so the next append's offset matches the file's end.
            let _ = active.file.set_len(active.len);
            return Err(e);
        }
        let offset = active.len;
        active.len += body.len() as u64;
        let id = active.id;
        self.dirty = true;
        *self.live.entry(id).or_default() += 1;
        self.owner.insert((qid, seq), id);
        Ok(BodyRef::Segment {
            id,
            offset,
            len: body.len() as u32,
        })
    }

    fn roll(&mut self) -> std::io::Result<()> {
        if let Some(old) = self.active.take() {
            old.file.sync_data()?;
            if self.live.get(&old.id).copied().unwrap_or(0) == 0 {
                self.live.remove(&old.id);
                self.emptied.push(old.id);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.path(id))?;
        // The new file's directory entry must be durable before a record points into it.
        File::open(&self.dir)?.sync_all()?;
        self.active = Some(Active { id, file, len: 0 });
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            if let Some(a) = &self.active {
                a.file.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// Forgets the body of (qid, seq); false if it did not live in a segment.
    pub fn release(&mut self, qid: u64, seq: u64) -> bool {
        let Some(id) = self.owner.remove(&(qid, seq)) else {
            return false;
        };
        let live = self.live.entry(id).or_default();
        *live = live.saturating_sub(1);
        if *live == 0 {
            self.live.remove(&id);
            self.emptied.push(id);
            // An emptied active segment is let go too: the next large body starts a new file,
            // so an idle queue does not keep up to a whole segment of dead bytes on disk.
            if self.active.as_ref().is_some_and(|a| a.id == id) {
                self.active = None;
            }
        }
        true
    }

    /// Deletes the segments emptied so far; call only after a successful flush.
    pub fn remove_emptied(&mut self) -> std::io::Result<()> {
        for id in std::mem::take(&mut self.emptied) {
            self.remove(id)?;
        }
        Ok(())
    }

    fn remove(&self, id: u64) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// At open: message (qid, seq) keeps its body in segment `id`.
    pub fn note(&mut self, qid: u64, seq: u64, id: u64) {
        *self.live.entry(id).or_default() += 1;
        self.owner.insert((qid, seq), id);
    }

    /// After recovery: deletes segment files no stored message refers to (left by deletes that
    /// were durable before a crash, or by appends whose records never committed).
    pub fn remove_unreferenced(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(id) = parse_name(&name.to_string_lossy()) {
                if !self.live.contains_key(&id) {
                    self.remove(id)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Reads a body back from segment `id` in `dir`.
pub fn read_body(dir: &Path, id: u64, offset: u64, len: u32) -> std::io::Result<Bytes> {
    let file = File::open(dir.join(segment_name(id)))?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

fn segment_name(id: u64) -> String {
    format!("{id:016x}.seg")
}

fn parse_name(name: &str) -> Option<u64> {
    u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
}
