//! The two halves of a real crash, for backends that can run a child process and kill it: what
//! the child writes before it is aborted, and what must be there after.

use super::*;

/// Commits awaited one by one before the unawaited ones.
const AWAITED: u64 = 50;
/// Commits submitted without waiting; the child dies with most of them in flight.
const UNAWAITED: u64 = 200;
/// The one unawaited commit whose ticket the child does await, before submitting the rest:
/// it and everything submitted before it must survive.
const DURABLE: u64 = UNAWAITED / 4;
const GROUPS: u64 = UNAWAITED / 10;
const BASE_KEY: &str = "conformance/crash/base";

struct Ids(QueueId);

impl Ids {
    fn a(&self) -> QueueId {
        self.0
    }
    fn b(&self) -> QueueId {
        self.0 + 1
    }
    fn c(&self) -> QueueId {
        self.0 + 2
    }
    /// Queues the unawaited commits drop.
    fn doomed(&self, group: u64) -> QueueId {
        self.0 + 3 + group
    }
    /// Queues the unawaited commits create.
    fn born(&self, group: u64) -> QueueId {
        self.0 + 3 + GROUPS + group
    }
}

fn key(kind: &str, i: u64) -> String {
    format!("conformance/crash/{kind}/{i:05}")
}

/// Unawaited commit `i`: five queues and metadata, all or nothing.
fn unawaited(ids: &Ids, i: u64) -> Vec<Op> {
    let mut ops = vec![
        put(ids.a(), 1000 + i),
        deliveries(ids.a(), 1000 + i, i as u32 + 1),
        put(ids.b(), i + 1),
        delete(ids.c(), i + 1, false),
        put_meta(&key("unawaited", i), b"1"),
    ];
    match i % 10 {
        0 => ops.extend([
            put_queue(ids.born(i / 10), "crash/born"),
            put(ids.born(i / 10), 1),
        ]),
        5 => ops.push(Op::DropQueue {
            id: ids.doomed(i / 10),
        }),
        _ => {}
    }
    ops
}

/// Child side: commits a known set (awaiting each ticket), then submits more multi-queue
/// commits without awaiting them (but one, midway), and returns once about half of those
/// after it are durable, by the store's backlog; the caller then aborts the process without
/// dropping the store. Give the store small rounds (or slow ones) to die mid-round.
pub async fn write(store: &dyn Store) {
    let c = Check("crash::write");
    let rec = store
        .recover(0)
        .unwrap_or_else(|e| panic!("crash::write: recover: {e}"));
    let ids = Ids(rec.next_queue_id);
    let mut setup = vec![
        put_queue(ids.a(), "crash/a"),
        put_queue(ids.b(), "crash/b"),
        put_queue(ids.c(), "crash/c"),
        put_meta(BASE_KEY, &ids.0.to_be_bytes()),
    ];
    for g in 0..GROUPS {
        setup.extend([
            put_queue(ids.doomed(g), "crash/doomed"),
            put(ids.doomed(g), 1),
        ]);
    }
    setup.extend((1..=UNAWAITED).map(|s| put(ids.c(), s)));
    c.commit(store, setup).await;
    for i in 0..AWAITED {
        let ops = vec![
            put(ids.a(), i + 1),
            deliveries(ids.a(), i + 1, i as u32 + 1),
            put_meta(&key("awaited", i), b"1"),
        ];
        c.commit(store, ops).await;
    }
    for i in 0..UNAWAITED {
        let ticket = store.commit(unawaited(&ids, i));
        // Its predecessors are still in flight when it resolves; its successors are when
        // the caller aborts.
        if i == DURABLE {
            c.settle(ticket).await;
        }
    }
    // Return (to be killed) once about half of the rest is durable, so a store with several
    // rounds in flight dies in the middle of them.
    let pending = store.backlog().bytes();
    c.wait("the backlog", store.backlog().room(pending / 2 + 1))
        .await;
}

/// Parent side, after the child was killed: everything awaited is there, and each unawaited
/// commit is there whole or not at all.
pub async fn check(store: &dyn Store) {
    let c = Check("crash::check");
    let rec = store
        .recover(usize::MAX)
        .unwrap_or_else(|e| panic!("crash::check: recover: {e}"));
    c.shape(&rec, usize::MAX);
    let base = meta(&rec, BASE_KEY)
        .and_then(|v| v[..].try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or_else(|| panic!("crash::check: the first awaited commit is lost"));
    let ids = Ids(base);
    let (a, b, qc) = (
        c.queue(&rec, ids.a()),
        c.queue(&rec, ids.b()),
        c.queue(&rec, ids.c()),
    );
    let find = |q: &RecoveredQueue, seq: u64| q.head.iter().find(|m| m.seq == seq).cloned();
    for i in 0..AWAITED {
        let m = find(a, i + 1)
            .unwrap_or_else(|| panic!("crash::check: awaited message {} lost", i + 1));
        assert_eq!(
            m.deliveries,
            i as u32 + 1,
            "crash::check: awaited count of {}",
            i + 1
        );
        assert!(
            meta(&rec, &key("awaited", i)).is_some(),
            "crash::check: awaited meta {i} lost"
        );
    }
    let mut survived = 0;
    for i in 0..UNAWAITED {
        let applied = find(b, i + 1).is_some();
        let what = |part: &str| format!("crash::check: unawaited commit {i} is half there: {part}");
        assert!(
            applied || i > DURABLE,
            "crash::check: commit {i}, submitted before an awaited one, is lost"
        );
        assert_eq!(
            find(a, 1000 + i).map(|m| m.deliveries),
            applied.then_some(i as u32 + 1),
            "{}",
            what("put with count")
        );
        assert_eq!(find(qc, i + 1).is_none(), applied, "{}", what("delete"));
        assert_eq!(
            meta(&rec, &key("unawaited", i)).is_some(),
            applied,
            "{}",
            what("metadata")
        );
        let exists = |id| rec.queues.iter().any(|q| q.id == id);
        match i % 10 {
            0 => assert_eq!(
                exists(ids.born(i / 10)),
                applied,
                "{}",
                what("created queue")
            ),
            5 => assert_eq!(
                !exists(ids.doomed(i / 10)),
                applied,
                "{}",
                what("dropped queue")
            ),
            _ => {}
        }
        survived += u64::from(applied);
    }
    println!("crash::check: {survived} of {UNAWAITED} unawaited commits survived");
    // The store takes writes again.
    c.commit(store, vec![put(ids.b(), 10_000)]).await;
    assert_eq!(
        seqs(&c.read(store, ids.b(), 9_999, 1).await),
        [10_000],
        "crash::check: a write after"
    );
}
