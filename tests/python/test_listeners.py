"""Guide: the PrintingListener walk-through and named listeners."""

import stomp

from helpers import Recorder, send_and_confirm, subscribe_and_confirm, unique_queue


def test_printing_listener_flow(clients, capsys):
    """>>> c.set_listener('', PrintingListener()); c.connect(..., wait=True)
    >>> c.subscribe('/queue/test', 123); c.send('/queue/test', 'a test message')
    on_message {'destination': ..., 'message-id': ..., 'subscription': '123', ...} a test message"""
    b = clients.default_broker
    c = b.connection("1.1")
    c.set_listener("", stomp.PrintingListener())
    rec = Recorder()
    c.set_listener("recorder", rec)
    clients.track(c, rec)
    c.connect(b.login, b.passcode, wait=True)

    dest = unique_queue("printing")
    subscribe_and_confirm(c, rec, dest, 123)
    send_and_confirm(c, rec, dest, "a test message")
    frame = rec.next_message()

    assert frame.body == "a test message"
    assert frame.headers["destination"] == dest
    assert frame.headers["message-id"]
    assert frame.headers["subscription"] == "123"
    assert int(frame.headers.get("content-length", len("a test message"))) == len("a test message")

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(l.startswith("on_connecting") for l in lines), out
    assert any(l.startswith("on_connected") and "'version': '1.1'" in l for l in lines), out
    assert any(l.startswith("on_send SUBSCRIBE") and "'id': 123" in l for l in lines), out
    assert any(l.startswith("on_send SEND") and "a test message" in l for l in lines), out
    assert any(l.startswith("on_before_message") and "a test message" in l for l in lines), out
    assert any(l.startswith("on_message") and "'subscription': '123'" in l
               and l.endswith("a test message") for l in lines), out


def test_named_listeners_all_receive(clients, capsys):
    """>>> c.set_listener('stats', StatsListener()); c.set_listener('print', PrintingListener())
    Both named listeners (plus two recording ones) see the same message."""
    b = clients.default_broker
    c = b.connection("1.1")
    stats = stomp.StatsListener()
    first, second = Recorder(), Recorder()
    c.set_listener("stats", stats)
    c.set_listener("print", stomp.PrintingListener())
    # stomp.py notifies listeners in name order: the recorders we wait on sort
    # after 'print' and 'stats', so those have run when a recorder has the frame.
    c.set_listener("z1-first", first)
    c.set_listener("z2-second", second)
    clients.track(c, first)
    c.connect(b.login, b.passcode, wait=True)

    assert c.get_listener("stats") is stats
    dest = unique_queue("named")
    subscribe_and_confirm(c, first, dest, "named-sub")
    send_and_confirm(c, first, dest, "for every listener")

    f1 = first.next_message()
    f2 = second.next_message()
    for f in (f1, f2):
        assert f.body == "for every listener"
        assert f.headers["subscription"] == "named-sub"
    assert f1.headers["message-id"] == f2.headers["message-id"]
    assert stats.messages == 1
    assert stats.connections == 1
    assert stats.errors == 0
    assert stats.messages_sent >= 3  # CONNECT/STOMP, SUBSCRIBE, SEND
    assert "for every listener" in capsys.readouterr().out

    # A removed listener is no longer called.
    c.remove_listener("z2-second")
    send_and_confirm(c, first, dest, "after removal")
    assert first.next_message().body == "after removal"
    assert second.messages.empty()
    assert stats.messages == 2
