"""What a consumer process tells the test that started it, the same way on every broker: each
SUBSCRIBE, ACK and NACK stomp.py sends for django-stomp goes out with a receipt, and when the
broker's RECEIPT arrives one JSON line is appended to the file named by DJANGO_STOMP_EVENTS. A
RECEIPT for a SUBSCRIBE says the broker holds the subscription (and the queue behind it); one for
an ACK or NACK says the broker has settled the message. The application code is untouched: only
the frames gain a `receipt` header. Without DJANGO_STOMP_EVENTS nothing is installed."""
import json
import os
import threading
import uuid

import stomp
from stomp.protocol import Protocol11

_NAME = "stampede-tests-observer"
_lock = threading.Lock()


class _Receipts(stomp.ConnectionListener):
    def __init__(self, path):
        self.path = path
        self.waiting = {}

    def expect(self, receipt, event):
        with _lock:
            self.waiting[receipt] = event

    def on_receipt(self, frame):
        with _lock:
            event = self.waiting.pop(frame.headers.get("receipt-id"), None)
            if event is not None:
                with open(self.path, "a") as f:
                    f.write(json.dumps(event) + "\n")


def _receipts(conn):
    listener = conn.get_listener(_NAME)
    if listener is None:
        listener = _Receipts(os.environ["DJANGO_STOMP_EVENTS"])
        conn.set_listener(_NAME, listener)
    return listener


def _expect(conn, event):
    receipt = "observe-" + uuid.uuid4().hex
    _receipts(conn).expect(receipt, event)
    return receipt


def install():
    if not os.environ.get("DJANGO_STOMP_EVENTS"):
        return
    subscribe, ack, nack = Protocol11.subscribe, Protocol11.ack, Protocol11.nack

    def observed_subscribe(self, destination, id, ack="auto", headers=None, **kw):
        kw["receipt"] = _expect(self, {"event": "subscribed", "destination": destination})
        return subscribe(self, destination, id, ack, headers, **kw)

    def observed_ack(self, id, subscription, transaction=None, receipt=None):
        receipt = receipt or _expect(self, {"event": "acked", "message": id})
        return ack(self, id, subscription, transaction, receipt)

    def observed_nack(self, id, subscription, transaction=None, receipt=None, **kw):
        receipt = receipt or _expect(self, {"event": "nacked", "message": id})
        return nack(self, id, subscription, transaction, receipt, **kw)

    Protocol11.subscribe = observed_subscribe
    Protocol11.ack = observed_ack
    Protocol11.nack = observed_nack
