"""Guide section 'Establishing a connection' and 'Sending and receiving messages'."""

import errno
import os
import socket

import pytest
import stomp

from conftest import split_host_port
from helpers import (Recorder, new_receipt, send_and_confirm, subscribe_and_confirm,
                     unique_queue, wait_event)


def roundtrip(conn, rec, version, ack="auto"):
    """Subscribe, send, receive (and ack, if the mode needs it) on one connection;
    returns the MESSAGE frame."""
    dest = unique_queue("rt-" + version.replace(".", ""))
    subscribe_and_confirm(conn, rec, dest, "sub-1", ack=ack)
    send_and_confirm(conn, rec, dest, "hello " + version)
    frame = rec.next_message()
    assert frame.body == "hello " + version
    assert frame.headers["destination"] == dest
    assert frame.headers.get("message-id")
    if ack != "auto":
        rid = new_receipt("ack")
        if version == "1.2":
            conn.ack(frame.headers["ack"], receipt=rid)
        elif version == "1.1":
            conn.ack(frame.headers["message-id"], frame.headers["subscription"], receipt=rid)
        else:
            conn.ack(frame.headers["message-id"], receipt=rid)
        rec.wait_receipt(rid)
    return frame


def test_simplest_connection_is_stomp_1_1(clients):
    """>>> c = stomp.Connection([...]); c.connect(login, passcode, wait=True)
    'By default this represents a STOMP 1.1 connection.'"""
    b = clients.default_broker
    kwargs = {"vhost": b.vhost} if b.vhost else {}
    c = stomp.Connection(b.host_and_ports, **kwargs)
    rec = Recorder()
    c.set_listener("", rec)
    clients.track(c, rec)
    c.connect(b.login, b.passcode, wait=True)
    wait_event(rec.connected, "on_connected")
    assert c.is_connected()
    assert rec.connected_frames[0].headers.get("version") == "1.1"
    sent_cmd, sent_headers = rec.sent_frames[0]
    assert sent_cmd == "STOMP" and sent_headers["accept-version"] == "1.1"
    roundtrip(c, rec, "1.1")


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_versioned_connection_negotiates_version(clients, version):
    """>>> c = stomp.Connection10/11/12([...]) -> CONNECTED version matches, send/receive works."""
    conn, rec = clients.connect(version)
    assert conn.is_connected()
    connected = rec.connected_frames[0].headers
    if version == "1.0":
        # STOMP 1.0 servers may omit the header; if present it must say 1.0.
        assert connected.get("version", "1.0") == "1.0"
    else:
        assert connected.get("version") == version
    frame = roundtrip(conn, rec, version, ack="client")
    if version != "1.0":
        assert frame.headers.get("subscription") == "sub-1"
    if version == "1.2":
        # 1.2: a MESSAGE from a client/client-individual subscription carries `ack`
        # (RabbitMQ omits it for ack=auto, which the spec allows).
        assert frame.headers.get("ack"), "STOMP 1.2 MESSAGE frames carry an ack header"


@pytest.mark.parametrize("with_connect_command", [False, True], ids=["STOMP-frame", "CONNECT-frame"])
def test_connect_frame_kinds_and_extra_headers(clients, with_connect_command):
    """Protocol12.connect(..., headers=..., with_connect_command=...): both the STOMP and
    the CONNECT command work, and non-standard CONNECT headers are tolerated."""
    b = clients.default_broker
    conn = b.connection("1.2")
    rec = Recorder()
    conn.set_listener("", rec)
    clients.track(conn, rec)
    conn.connect(b.login, b.passcode, wait=True, headers={"client-id": "interop-suite"},
                 with_connect_command=with_connect_command, **{"x-extra": "yes"})
    wait_event(rec.connected, "on_connected")
    sent_cmd, sent_headers = rec.sent_frames[0]
    assert sent_cmd == ("CONNECT" if with_connect_command else "STOMP")
    assert sent_headers["client-id"] == "interop-suite" and sent_headers["x-extra"] == "yes"
    assert rec.connected_frames[0].headers.get("version") == "1.2"
    roundtrip(conn, rec, "1.2")


def _refused_port():
    """A loopback port that refuses connections: bound (so nobody else takes it)
    but not listening. Returns (socket, port); keep the socket open."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def test_failover_host_list(clients):
    """>>> c = stomp.Connection([('192.168.1.100', 61613), ('192.168.1.101', 62613)])
    Adapted to loopback: the first address refuses connections, stomp.py moves on
    to the second one, which is the broker."""
    b = clients.default_broker
    blocker, dead_port = _refused_port()
    try:
        hosts = [("127.0.0.1", dead_port), b.host_and_ports[0]]
        conn = b.connection("1.1", host_and_ports=hosts, reconnect_sleep_initial=0.05,
                            reconnect_sleep_jitter=0.0)
        rec = Recorder()
        conn.set_listener("", rec)
        clients.track(conn, rec)
        conn.connect(b.login, b.passcode, wait=True)
        assert conn.transport.current_host_and_port == b.host_and_ports[0]
        roundtrip(conn, rec, "1.1")
    finally:
        blocker.close()


def _ipv6_broker(broker_factory, broker):
    if not broker.external:
        return broker_factory({"STAMPEDE__LISTENERS__STOMP__BIND": "[::1]:0"})
    addr = os.environ.get("STOMP_TEST_BROKER_V6") or "[::1]:%d" % broker.port
    host, port = split_host_port(addr)
    probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        probe.settimeout(5)
        probe.connect((host, port))
    except OSError as e:
        pytest.skip("external broker not reachable on [%s]:%d (%s); set STOMP_TEST_BROKER_V6"
                    % (host, port, errno.errorcode.get(e.errno, e)))
    finally:
        probe.close()
    b = type(broker)(host, port, vhost=broker.vhost, login=broker.login,
                     passcode=broker.passcode, external=True)
    return b


def test_ipv6_connection(clients, broker, broker_factory):
    """>>> c = stomp.Connection(['fe80::a00:27ff:fe90:3f1a%en1', 62613])
    Adapted: the guide's link-local address becomes ::1 (and a list of one
    (host, port) tuple, which is what host_and_ports expects)."""
    b6 = _ipv6_broker(broker_factory, broker)
    assert ":" in b6.host, "expected an IPv6 listener, got %r" % b6.host
    conn, rec = clients.connect("1.1", broker=b6)
    assert conn.transport.current_host_and_port[0] == b6.host
    roundtrip(conn, rec, "1.1")


def test_send_content_type_and_custom_headers(clients):
    """Protocol12.send(destination, body, content_type=None, headers=None, **keyword_headers):
    content-type, custom headers (dict and keyword) and content-length arrive intact."""
    producer, prec = clients.connect("1.2")
    consumer, crec = clients.connect("1.2")
    dest = unique_queue("send-hdrs")
    subscribe_and_confirm(consumer, crec, dest, "s")
    body = "h\u00e9llo \u2603 world"
    rid = new_receipt()
    producer.send(dest, body, content_type="text/plain", headers={"x-from-dict": "a"},
                  receipt=rid, **{"x-from-kw": "b"})
    prec.wait_receipt(rid)
    frame = crec.next_message()
    assert frame.body == body
    assert frame.headers["content-type"].startswith("text/plain")
    assert frame.headers["x-from-dict"] == "a"
    assert frame.headers["x-from-kw"] == "b"
    assert int(frame.headers["content-length"]) == len(body.encode("utf-8"))
    assert frame.headers["subscription"] == "s"


def test_connect_then_disconnect_reports_disconnected(clients):
    """The connection object reports its state: connected after connect(wait=True),
    disconnected after DISCONNECT."""
    conn, rec = clients.connect("1.2")
    assert conn.is_connected()
    conn.disconnect(receipt=new_receipt("bye"))
    wait_event(rec.disconnected, "on_disconnected")
    assert not conn.is_connected()
