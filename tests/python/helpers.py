"""Shared helpers for the stomp.py interop suite.

Everything here synchronises on events (threading.Event / queue.Queue / receipts).
Timeouts are only failure bounds: a test that hits one fails with a message that
says what it was waiting for.
"""

import queue
import threading
import time
import uuid

import stomp

# Upper bound for any single wait on the broker. Generous on purpose: it only
# matters when something is broken, and then the test fails with context.
WAIT = 10.0

CONNECTION_CLASSES = {
    "1.0": stomp.Connection10,
    "1.1": stomp.Connection11,
    "1.2": stomp.Connection12,
}


def unique(prefix="q"):
    """A destination-safe unique name, so tests never share a queue."""
    return "stampede-it-%s-%s" % (prefix, uuid.uuid4().hex)


def unique_queue(prefix="q"):
    return "/queue/" + unique(prefix)


class Recorder(stomp.ConnectionListener):
    """A listener that records every callback and lets tests wait for them."""

    def __init__(self):
        self.messages = queue.Queue()
        self.errors = queue.Queue()
        self.events = []  # ordered ("kind", payload) log of everything seen
        self.connected_frames = []
        self.sent_frames = []
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.heartbeat_timeout = threading.Event()
        self.receiver_loop_completed = threading.Event()
        self._receipts = {}
        self._cond = threading.Condition()
        self._heartbeats = 0

    # -- callbacks ---------------------------------------------------------
    def _log(self, kind, payload=None):
        with self._cond:
            self.events.append((kind, payload))
            self._cond.notify_all()

    def on_connected(self, frame):
        self.connected_frames.append(frame)
        self._log("connected", dict(frame.headers))
        self.connected.set()

    def on_message(self, frame):
        self._log("message", (dict(frame.headers), frame.body))
        self.messages.put(frame)

    def on_error(self, frame):
        self._log("error", (dict(frame.headers), frame.body))
        self.errors.put(frame)

    def on_receipt(self, frame):
        rid = frame.headers.get("receipt-id")
        self._log("receipt", rid)
        with self._cond:
            self._receipts[rid] = frame
            self._cond.notify_all()

    def on_send(self, frame):
        self.sent_frames.append((frame.cmd, dict(frame.headers)))

    def on_disconnected(self):
        self._log("disconnected")
        self.disconnected.set()

    def on_heartbeat(self):
        with self._cond:
            self._heartbeats += 1
            self._cond.notify_all()

    def on_heartbeat_timeout(self):
        self._log("heartbeat_timeout")
        self.heartbeat_timeout.set()

    def on_receiver_loop_completed(self, frame):
        self.receiver_loop_completed.set()

    # -- waiting -----------------------------------------------------------
    def wait_receipt(self, rid, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._receipts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "no RECEIPT %r within %.1fs; errors=%r events=%r"
                        % (rid, timeout, list(self.errors.queue), self.events[-10:]))
                self._cond.wait(left)
            return self._receipts[rid]

    def has_receipt(self, rid):
        with self._cond:
            return rid in self._receipts

    def next_message(self, timeout=WAIT, what="a MESSAGE"):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("waited %.1fs for %s; errors=%r events=%r"
                                 % (timeout, what, [(e.headers, e.body) for e in self.errors.queue],
                                    self.events[-10:])) from None

    def next_error(self, timeout=WAIT):
        try:
            return self.errors.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("waited %.1fs for an ERROR frame; events=%r"
                                 % (timeout, self.events[-10:])) from None

    def wait_heartbeats(self, count, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heartbeats < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("only %d server heart-beats within %.1fs (wanted %d)"
                                         % (self._heartbeats, timeout, count))
                self._cond.wait(left)
            return self._heartbeats

    def kinds(self):
        with self._cond:
            return [k for k, _ in self.events]


def wait_event(event, what, timeout=WAIT):
    if not event.wait(timeout):
        raise AssertionError("waited %.1fs for %s" % (timeout, what))


def new_receipt(prefix="r"):
    return "%s-%s" % (prefix, uuid.uuid4().hex)


def send_and_confirm(conn, recorder, destination, body, **headers):
    """SEND with a receipt and wait for it: afterwards the broker has the message."""
    rid = new_receipt("send")
    conn.send(destination, body, receipt=rid, **headers)
    recorder.wait_receipt(rid)
    return rid


def subscribe_and_confirm(conn, recorder, destination, sub_id, ack="auto", **headers):
    """SUBSCRIBE with a receipt and wait for it: afterwards the subscription is live."""
    rid = new_receipt("sub")
    if isinstance(conn, stomp.Connection10):
        conn.subscribe(destination, id=sub_id, ack=ack, receipt=rid, **headers)
    else:
        conn.subscribe(destination, sub_id, ack=ack, receipt=rid, **headers)
    recorder.wait_receipt(rid)
    return rid


def disconnect_and_wait(conn, recorder):
    """DISCONNECT with an explicit receipt (stomp.py then waits for it) and wait
    until stomp.py reports the connection as closed."""
    if not conn.is_connected():
        return
    conn.disconnect(receipt=new_receipt("bye"))
    wait_event(recorder.disconnected, "on_disconnected after DISCONNECT")


def collect_until(recorder, marker_body, timeout=WAIT):
    """Collect MESSAGE frames until one with body == marker_body arrives.

    Because queues are FIFO, a marker sent (with a receipt) after some action
    proves that everything the broker was going to deliver before it has been
    delivered: this is how the suite checks that something did NOT arrive,
    without sleeping."""
    got = []
    while True:
        frame = recorder.next_message(timeout, what="marker %r (got so far: %r)"
                                      % (marker_body, [f.body for f in got]))
        got.append(frame)
        if frame.body == marker_body:
            return got


def not_redelivered(frame):
    """A first delivery: `redelivered` is absent or not 'true'."""
    return frame.headers.get("redelivered", "false") != "true"
