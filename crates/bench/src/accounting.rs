//! Delivery accounting: which (producer, sequence) pairs each consumer saw, and the verdict once the
//! run is over — missing, duplicated, redelivered. Pure data, no I/O, so the rules that decide
//! whether a broker lost or duplicated a message are unit-tested here rather than trusted.
//!
//! Queues must deliver every message exactly once across all consumers; topics once to every
//! consumer. Each consumer task owns one [`Tracker`] (no sharing on the hot path); the verdict
//! merges them at the end.

use serde::Serialize;

/// Sequence numbers at or above this are counted as unexpected without being stored, so a corrupt
/// stamp cannot make a bitmap allocate gigabytes.
const MAX_TRACKED_SEQ: u64 = 1 << 32;

/// A set of sequence numbers of one producer, as a growable bitmap (sequences are dense from 0).
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`; false when it was already present.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if w >= self.words.len() {
            // Doubling keeps growth amortised when a long run fills the set one message at a time.
            let want = (w + 1).max(self.words.len() * 2);
            self.words.resize(want, 0);
        }
        let fresh = self.words[w] & bit == 0;
        self.words[w] |= bit;
        self.len += u64::from(fresh);
        fresh
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many members are below `limit`.
    pub fn count_below(&self, limit: u64) -> u64 {
        let full = (limit / 64) as usize;
        let mut n: u64 = self
            .words
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        if let Some(w) = self.words.get(full) {
            let mask = (1u64 << (limit % 64)) - 1;
            n += u64::from((w & mask).count_ones());
        }
        n
    }

    /// Members present in both sets.
    pub fn overlap(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }

    pub fn union_with(&mut self, other: &SeqSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
        self.len = self.words.iter().map(|w| u64::from(w.count_ones())).sum();
    }
}

/// What one consumer received.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Indexed by producer id.
    seen: Vec<SeqSet>,
    /// Frames of this run, duplicates included.
    pub received: u64,
    /// Frames whose sequence this consumer had already seen.
    pub duplicates: u64,
    /// Frames flagged `redelivered: true` by the broker.
    pub redelivered: u64,
    /// Stamps with a sequence too large to track.
    pub out_of_range: u64,
}

impl Tracker {
    /// Records one delivery; returns false when this consumer had seen it before.
    pub fn record(&mut self, producer: u16, seq: u64, redelivered: bool) -> bool {
        self.received += 1;
        self.redelivered += u64::from(redelivered);
        if seq >= MAX_TRACKED_SEQ {
            self.out_of_range += 1;
            return true;
        }
        let p = usize::from(producer);
        if p >= self.seen.len() {
            self.seen.resize_with(p + 1, SeqSet::default);
        }
        let fresh = self.seen[p].insert(seq);
        self.duplicates += u64::from(!fresh);
        fresh
    }

    pub fn producer(&self, producer: usize) -> Option<&SeqSet> {
        self.seen.get(producer)
    }
}

/// How deliveries are expected to spread over the consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Queue: every message to exactly one consumer.
    ExactlyOnce,
    /// Topic: every message to every consumer.
    EveryConsumer,
}

/// The outcome of a run's accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Deliveries the run should have produced (messages × consumers for topics).
    pub expected: u64,
    /// Deliveries of this run's messages, duplicates included.
    pub received: u64,
    /// Expected deliveries that never arrived.
    pub missing: u64,
    /// Deliveries beyond the first of a message (per consumer for topics, across all for queues).
    pub duplicates: u64,
    /// Deliveries flagged `redelivered: true`.
    pub redelivered: u64,
    /// Messages with a sequence the producer never confirmed (e.g. sent just before it failed).
    pub unexpected: u64,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.unexpected == 0
    }
}

/// Checks the consumers' trackers against `sent[p]`, the number of messages producer `p` sent
/// (sequences `0..sent[p]`).
pub fn verify(sent: &[u64], trackers: &[Tracker], delivery: Delivery) -> Verdict {
    let mut v = Verdict {
        received: trackers.iter().map(|t| t.received).sum(),
        duplicates: trackers.iter().map(|t| t.duplicates).sum(),
        redelivered: trackers.iter().map(|t| t.redelivered).sum(),
        unexpected: trackers.iter().map(|t| t.out_of_range).sum(),
        ..Verdict::default()
    };
    let total: u64 = sent.iter().sum();
    match delivery {
        Delivery::EveryConsumer => {
            v.expected = total * trackers.len() as u64;
            for t in trackers {
                let (missing, unexpected) = check_sets(sent, &t.seen);
                v.missing += missing;
                v.unexpected += unexpected;
            }
        }
        Delivery::ExactlyOnce => {
            v.expected = total;
            let producers = trackers.iter().map(|t| t.seen.len()).max().unwrap_or(0);
            let mut union = vec![SeqSet::default(); producers.max(sent.len())];
            for t in trackers {
                for (u, s) in union.iter_mut().zip(&t.seen) {
                    // Seen by an earlier consumer too: the queue delivered it twice.
                    v.duplicates += u.overlap(s);
                    u.union_with(s);
                }
            }
            let (missing, unexpected) = check_sets(sent, &union);
            v.missing = missing;
            v.unexpected += unexpected;
        }
    }
    v
}

/// Missing and unexpected counts of one view (a consumer's sets or the union) against `sent`.
fn check_sets(sent: &[u64], sets: &[SeqSet]) -> (u64, u64) {
    let empty = SeqSet::default();
    let mut missing = 0;
    let mut unexpected = 0;
    for (p, &n) in sent.iter().enumerate() {
        let s = sets.get(p).unwrap_or(&empty);
        let good = s.count_below(n);
        missing += n - good;
        unexpected += s.len() - good;
    }
    unexpected += sets.iter().skip(sent.len()).map(SeqSet::len).sum::<u64>();
    (missing, unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(deliveries: &[(u16, u64)]) -> Tracker {
        let mut t = Tracker::default();
        for &(p, s) in deliveries {
            t.record(p, s, false);
        }
        t
    }

    fn all(producers: u16, n: u64) -> Vec<(u16, u64)> {
        (0..producers)
            .flat_map(|p| (0..n).map(move |s| (p, s)))
            .collect()
    }

    #[test]
    fn complete_queue_run_is_clean() {
        let d = all(2, 100);
        let (a, b) = d.split_at(77);
        let v = verify(
            &[100, 100],
            &[tracker(a), tracker(b)],
            Delivery::ExactlyOnce,
        );
        assert_eq!(v.expected, 200);
        assert_eq!(v.received, 200);
        assert!(v.is_clean(), "{v:?}");
    }

    #[test]
    fn a_lost_message_is_detected() {
        let mut d = all(2, 100);
        d.retain(|&m| m != (1, 63));
        let v = verify(&[100, 100], &[tracker(&d)], Delivery::ExactlyOnce);
        assert_eq!((v.missing, v.duplicates), (1, 0));
        assert!(!v.is_clean());
        // The last message of a producer is the easiest one for a broker to drop on shutdown.
        let mut d = all(1, 64);
        d.pop();
        let v = verify(&[64], &[tracker(&d)], Delivery::ExactlyOnce);
        assert_eq!(v.missing, 1);
    }

    #[test]
    fn a_duplicate_within_one_consumer_is_detected() {
        let mut d = all(1, 10);
        d.push((0, 4));
        let v = verify(&[10], &[tracker(&d)], Delivery::ExactlyOnce);
        assert_eq!((v.missing, v.duplicates, v.received), (0, 1, 11));
    }

    #[test]
    fn a_queue_message_delivered_to_two_consumers_is_a_duplicate() {
        let d = all(1, 10);
        let a = tracker(&d[..6]);
        let b = tracker(&d[5..]);
        let v = verify(&[10], &[a, b], Delivery::ExactlyOnce);
        assert_eq!((v.missing, v.duplicates), (0, 1));
    }

    #[test]
    fn topics_expect_every_message_at_every_consumer() {
        let d = all(1, 10);
        let full = tracker(&d);
        let short = tracker(&d[1..]);
        let v = verify(&[10], &[full.clone(), full], Delivery::EveryConsumer);
        assert!(v.is_clean() && v.expected == 20, "{v:?}");
        // The same message at two topic subscribers is no duplicate; one missing at one is a loss.
        let v = verify(&[10], &[tracker(&d), short], Delivery::EveryConsumer);
        assert_eq!((v.missing, v.duplicates), (1, 0));
    }

    #[test]
    fn unconfirmed_and_unknown_producers_are_unexpected() {
        let v = verify(
            &[3],
            &[tracker(&[(0, 0), (0, 1), (0, 2), (0, 3), (5, 0)])],
            Delivery::ExactlyOnce,
        );
        assert_eq!((v.missing, v.duplicates, v.unexpected), (0, 0, 2));
    }

    #[test]
    fn redeliveries_are_counted_but_are_not_duplicates_by_themselves() {
        let mut t = Tracker::default();
        t.record(0, 0, false);
        t.record(0, 1, true);
        let v = verify(&[2], &[t], Delivery::ExactlyOnce);
        assert_eq!((v.redelivered, v.duplicates, v.missing), (1, 0, 0));
    }

    #[test]
    fn seq_set_counts_and_merges() {
        let mut a = SeqSet::default();
        for s in [0, 63, 64, 200] {
            assert!(a.insert(s));
        }
        assert!(!a.insert(64));
        assert!(a.contains(200) && !a.contains(199));
        assert_eq!((a.len(), a.count_below(64), a.count_below(65)), (4, 2, 3));
        let mut b = SeqSet::default();
        b.insert(64);
        b.insert(1000);
        assert_eq!(a.overlap(&b), 1);
        a.union_with(&b);
        assert_eq!(a.len(), 5);
    }
}
