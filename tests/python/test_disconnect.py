"""Guide section 'Disconnect'."""

from helpers import (collect_until, new_receipt, send_and_confirm, subscribe_and_confirm,
                     unique_queue, wait_event)


def _receipt_then_disconnected(rec, rid):
    # Both callbacks happen. (stomp.py 9 itself calls on_disconnected just before
    # on_receipt for the DISCONNECT receipt, unlike the guide's older transcript,
    # so their order says nothing about the broker and is not checked.)
    assert ("receipt", rid) in rec.events, rec.events
    assert rec.kinds().count("disconnected") == 1, rec.events
    assert [k for k in rec.kinds() if k == "receipt"] == ["receipt"], rec.events


def test_disconnect_generates_receipt(clients):
    """>>> conn.disconnect()
    on_send DISCONNECT {'receipt': '<uuid>'} / on_receipt {'receipt-id': '<uuid>'} / on_disconnected"""
    conn, rec = clients.connect("1.2")
    conn.disconnect()
    wait_event(rec.disconnected, "on_disconnected")
    cmd, headers = rec.sent_frames[-1]
    assert cmd == "DISCONNECT"
    rid = headers["receipt"]
    assert rid
    _receipt_then_disconnected(rec, rid)
    assert not conn.is_connected()


def test_disconnect_with_own_receipt(clients):
    """conn.disconnect(receipt=...) returns after the broker answered that receipt."""
    conn, rec = clients.connect("1.1")
    rid = new_receipt("bye")
    conn.disconnect(receipt=rid)
    assert rec.has_receipt(rid)
    wait_event(rec.disconnected, "on_disconnected")
    _receipt_then_disconnected(rec, rid)


def test_frames_before_disconnect_are_processed(clients):
    """A graceful DISCONNECT: messages sent just before it (no receipts of their own)
    are in the queue once the DISCONNECT receipt has arrived."""
    producer, prec = clients.connect("1.2")
    dest = unique_queue("graceful")
    for i in range(5):
        producer.send(dest, "m%d" % i)
    rid = new_receipt("bye")
    producer.disconnect(receipt=rid)
    assert prec.has_receipt(rid)

    consumer, crec = clients.connect("1.2")
    subscribe_and_confirm(consumer, crec, dest, "g")
    send_and_confirm(consumer, crec, dest, "marker")
    assert [f.body for f in collect_until(crec, "marker")] == ["m0", "m1", "m2", "m3", "m4", "marker"]
