"""Guide section 'Transactions'; docs/behaviour.md Transactions."""

import pytest

from helpers import (collect_until, new_receipt, send_and_confirm, subscribe_and_confirm,
                     unique_queue, wait_event)


def test_commit_delivers_in_order_only_after_commit(clients):
    """>>> conn.subscribe('/queue/test', id=5); txid = conn.begin()
    >>> conn.send('/queue/test', 'test1', transaction=txid) ... 'test3'; conn.commit(txid)
    The three messages are invisible until COMMIT, then arrive in order."""
    conn, rec = clients.connect("1.1")
    dest = unique_queue("commit")
    subscribe_and_confirm(conn, rec, dest, 5)
    txid = conn.begin()
    assert txid
    for body in ("test1", "test2", "test3"):
        conn.send(dest, body, transaction=txid)

    # A non-transactional marker sent after the transactional SENDs overtakes
    # them: had they been visible, FIFO would deliver them first.
    send_and_confirm(conn, rec, dest, "marker-before-commit")
    assert [f.body for f in collect_until(rec, "marker-before-commit")] == ["marker-before-commit"]

    rid = new_receipt("commit")
    conn.commit(txid, receipt=rid)
    rec.wait_receipt(rid)
    frames = [rec.next_message(what="committed message %d" % i) for i in range(3)]
    assert [f.body for f in frames] == ["test1", "test2", "test3"]
    for f in frames:
        assert f.headers["subscription"] == "5"
        assert f.headers["destination"] == dest
    assert len({f.headers["message-id"] for f in frames}) == 3


def test_abort_discards(clients):
    """>>> conn.subscribe('/queue/test', id=6); txid = conn.begin()
    >>> conn.send(..., 'test4', transaction=txid); conn.send(..., 'test5', ...); conn.abort(txid)
    Nothing arrives: a marker sent after the ABORT receipt is the only message."""
    conn, rec = clients.connect("1.1")
    dest = unique_queue("abort")
    subscribe_and_confirm(conn, rec, dest, 6)
    txid = conn.begin()
    conn.send(dest, "test4", transaction=txid)
    conn.send(dest, "test5", transaction=txid)
    rid = new_receipt("abort")
    conn.abort(txid, receipt=rid)
    rec.wait_receipt(rid)
    send_and_confirm(conn, rec, dest, "marker-after-abort")
    assert [f.body for f in collect_until(rec, "marker-after-abort")] == ["marker-after-abort"]


def test_own_transaction_id(clients):
    """'you can also generate your own transaction id and pass that as a parameter to begin'"""
    conn, rec = clients.connect("1.2")
    dest = unique_queue("owntx")
    subscribe_and_confirm(conn, rec, dest, "own")
    txid = conn.begin(transaction="my-tx-" + dest.rsplit("-", 1)[-1])
    assert txid.startswith("my-tx-")
    conn.send(dest, "in my tx", transaction=txid)
    rid = new_receipt("commit")
    conn.commit(txid, receipt=rid)
    rec.wait_receipt(rid)
    assert rec.next_message().body == "in my tx"


def test_commit_of_unknown_transaction_is_an_error(clients):
    """docs/behaviour.md: unknown transaction ids get an ERROR with a `message` header
    (and no RECEIPT for the failed frame)."""
    conn, rec = clients.connect("1.2")
    rid = new_receipt("bad-commit")
    conn.commit("no-such-transaction", receipt=rid)
    err = rec.next_error()
    assert err.headers.get("message"), err.headers
    assert not rec.has_receipt(rid)


@pytest.mark.stampede_only
def test_error_carries_receipt_id_and_closes(clients):
    """docs/behaviour.md Protocol: ERROR carries receipt-id where the frame asked for a
    receipt, and then the connection is closed. (RabbitMQ 3.10 sends neither: no
    receipt-id, and the connection stays open after 'Bad transaction'.)"""
    conn, rec = clients.connect("1.2")
    rid = new_receipt("bad-commit")
    conn.commit("no-such-transaction", receipt=rid)
    err = rec.next_error()
    assert err.headers.get("receipt-id") == rid, err.headers
    wait_event(rec.disconnected, "the connection to close after ERROR")
