"""Guide section 'Dealing with disconnects' and heart-beat negotiation.

The broker follows the client's wish, as RabbitMQ and ActiveMQ do: it offers
its floor (protocol.heartbeat, 500 ms by default), so a client asking for 1 s
hears from it every second.

(That a client which stops heart-beating gets disconnected is tested on the
Rust side: stomp.py always heart-beats from its own thread.)
"""

import threading

import pytest
import stomp

from helpers import WAIT, Recorder, send_and_confirm, unique_queue, wait_event


def parse_heart_beat(connected_frame):
    value = connected_frame.headers.get("heart-beat")
    assert value, "CONNECTED has no heart-beat header: %r" % connected_frame.headers
    sx, sy = (int(v) for v in value.replace(" ", "").split(","))
    return sx, sy


@pytest.mark.parametrize("wish", [(0, 0), (1000, 1000), (10000, 10000), (0, 1000), (1000, 0)])
def test_the_clients_wish_decides(clients, wish):
    """CONNECTED answers each direction with the client's wish: what it wants to
    receive is what the server sends, what it can send is what the server expects."""
    conn, rec = clients.connect("1.2", heartbeats=wish)
    cx, cy = wish
    assert parse_heart_beat(rec.connected_frames[0]) == (cy, cx)
    assert conn.heartbeats == (cx, cy)


@pytest.mark.stampede_only
def test_a_wish_below_the_floor_gets_the_floor(clients):
    """docs/protocol.md Heart-beats: the broker offers protocol.heartbeat (500 ms)."""
    conn, rec = clients.connect("1.2", heartbeats=(100, 100))
    assert parse_heart_beat(rec.connected_frames[0]) == (500, 500)


def test_heartbeats_negotiated_and_sent(clients):
    """heartbeats=(1000, 1000): CONNECTED offers non-zero heart-beats both ways, the
    server really sends them, and a heart-beating idle client is not dropped."""
    conn, rec = clients.connect("1.2", heartbeats=(1000, 1000))
    sx, sy = parse_heart_beat(rec.connected_frames[0])
    assert (sx, sy) == (1000, 1000), "the client's wish decides"
    # stomp.py's negotiated intervals (spec: max of both sides, 0 if either is 0)
    assert conn.heartbeats == (max(1000, sy), max(1000, sx))

    # Idle for several negotiated intervals (well beyond the 1.5x grace), with
    # both sides heart-beating: the server keeps sending, nobody disconnects.
    rec.wait_heartbeats(4, timeout=WAIT + 4 * max(1000, sx) / 1000)
    assert not rec.disconnected.is_set()
    assert conn.is_connected()
    dest = unique_queue("hb-alive")
    send_and_confirm(conn, rec, dest, "still here")


def test_no_heartbeats_when_client_declines(clients):
    """heartbeats=(0, 0) (the stomp.py default): nothing to negotiate, the
    connection works without heart-beats."""
    conn, rec = clients.connect("1.1")
    assert conn.heartbeats == (0, 0)
    dest = unique_queue("hb-none")
    send_and_confirm(conn, rec, dest, "plain")


class MyListener(stomp.ConnectionListener):
    """The guide's listener, instrumented. Its on_message is 'arguably broken': it
    keeps working for longer than the heart-beat window. Instead of the guide's
    10 x sleep(1) the work lasts until stomp.py has declared the heart-beat
    timeout (so the test is deterministic), bounded by WAIT."""

    def __init__(self, conn):
        self.conn = conn
        self.slow = True
        self.errors = []
        self.received = []
        self.processed = threading.Event()
        self.message_seen = threading.Event()
        self.disconnected = threading.Event()
        self.timed_out = threading.Event()
        self.loop_completed = threading.Event()
        self.heartbeat_thread = None
        self.connected_frames = []
        self.connected = threading.Event()
        self.timed_out_while_processing = None

    def on_connected(self, frame):
        self.connected_frames.append(frame)
        self.connected.set()

    def on_error(self, frame):
        self.errors.append((frame.headers, frame.body))

    def on_message(self, frame):
        self.received.append(frame.body)
        self.message_seen.set()
        if self.slow:
            # "for x in range(10): time.sleep(1)"
            self.timed_out_while_processing = self.timed_out.wait(WAIT)
        self.processed.set()  # "processed message"

    def on_heartbeat_timeout(self):
        self.heartbeat_thread = threading.current_thread()
        self.timed_out.set()

    def on_disconnected(self):
        # The guide reconnects right here. stomp.py 9 calls on_disconnected from
        # its heart-beat thread while the receiver thread is still inside
        # on_message; reconnecting at this point would race two receiver threads
        # on one socket, so the test reconnects once the old receiver loop is done.
        self.disconnected.set()

    def on_receiver_loop_completed(self, frame):
        self.loop_completed.set()


def test_dealing_with_disconnects(clients, broker):
    """The guide's 'server' (slow listener, heartbeats on) and 'client' (plain
    sender) scripts: the heart-beats are negotiated, the slow listener makes the
    client miss heart-beats and drop the connection, the message still gets
    processed, and after reconnect + resubscribe the next message arrives
    (the first one, auto-acked, is not delivered again)."""
    b = broker
    dest = unique_queue("dealing")

    conn = b.connection("1.1", heartbeats=(1000, 1000))  # stomp.Connection is 1.1
    listener = MyListener(conn)
    conn.set_listener("", listener)
    rec = Recorder()
    conn.set_listener("recorder", rec)
    clients.track(conn, rec)

    def connect_and_subscribe(c):
        listener.connected.clear()
        c.connect(b.login, b.passcode, wait=True)
        wait_event(listener.connected, "on_connected")
        c.subscribe(destination=dest, id=1, ack="auto")

    connect_and_subscribe(conn)
    sx, sy = parse_heart_beat(listener.connected_frames[0])
    assert sx > 0 and sy > 0, "heart-beats not negotiated: %r" % ((sx, sy),)

    # the 'client' script
    client, crec = clients.connect("1.1", broker=b)
    send_and_confirm(client, crec, dest, "test message")

    wait_event(listener.processed, "the slow listener to finish", timeout=2 * WAIT)
    assert listener.received == ["test message"]
    assert rec.next_message().body == "test message"  # the recorder saw it after the listener
    assert listener.timed_out_while_processing, (
        "stomp.py never declared a heart-beat timeout while the listener was busy: "
        "the server did not send heart-beats at the negotiated rate?")
    wait_event(listener.disconnected, "on_disconnected after the heart-beat timeout")
    assert listener.errors == []

    # Reconnect as the guide's on_disconnected does, once stomp.py's old
    # receiver and heart-beat threads have finished.
    wait_event(listener.loop_completed, "the old receiver loop to end")
    if listener.heartbeat_thread is not None:
        listener.heartbeat_thread.join(WAIT)
        assert not listener.heartbeat_thread.is_alive()
    listener.slow = False
    rec.disconnected.clear()
    connect_and_subscribe(conn)
    assert conn.is_connected()
    assert len(listener.connected_frames) == 2

    send_and_confirm(client, crec, dest, "test message 2")
    frame = rec.next_message(what="the message sent after the reconnect")
    assert frame.body == "test message 2"
    assert frame.headers["subscription"] == "1"
    assert listener.received == ["test message", "test message 2"]
    assert listener.errors == []
