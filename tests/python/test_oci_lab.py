"""The OCI Queue STOMP lab (producer / consumer), over plain TCP.

As in the lab: the destination is a bare queue OCID, the passcode is sent
base64-encoded, the consumer subscribes with ack='client-individual' and acks
each message with conn.ack(id=frame.headers['message-id'],
subscription=frame.headers['subscription']) (stomp.Connection = STOMP 1.1).

Credentials: STOMP_TEST_OCI_LOGIN (default 'stampede-tenancy/oci-user', the
lab's '<tenancy>/<user>' form) and STOMP_TEST_OCI_TOKEN (default
'oci-auth-token'); the test sends base64(token) as the passcode. Stampede in
auth.mode=open accepts it as is; for RabbitMQ create a user whose password is
the base64 text (see README.md).
"""

import base64
import os
import threading
import uuid

import stomp

from helpers import WAIT, Recorder, collect_until, disconnect_and_wait, new_receipt, wait_event

OCI_LOGIN = os.environ.get("STOMP_TEST_OCI_LOGIN", "stampede-tenancy/oci-user")
OCI_TOKEN = os.environ.get("STOMP_TEST_OCI_TOKEN", "oci-auth-token")


def queue_ocid():
    return "ocid1.queue.oc1.phx." + uuid.uuid4().hex


class Listener(stomp.ConnectionListener):
    """The lab's consumer listener, recording what it did."""

    def __init__(self, conn):
        self.conn = conn
        self.errors = []
        self.frames = []
        self.changed = threading.Condition()

    def on_error(self, frame):
        self.errors.append((frame.headers, frame.body))

    def on_message(self, frame):
        # Received a message ... acknowledged (deleted).
        self.conn.ack(id=frame.headers["message-id"], subscription=frame.headers["subscription"])
        with self.changed:
            self.frames.append(frame)
            self.changed.notify_all()

    def wait_for(self, count, timeout=WAIT):
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.frames) >= count, timeout):
                raise AssertionError("consumer got %d of %d messages; errors=%r"
                                     % (len(self.frames), count, self.errors))
            return list(self.frames)


def lab_connection(clients, listener_factory=None):
    b = clients.default_broker
    encoded_password = base64.b64encode(OCI_TOKEN.encode("utf-8")).decode("utf-8")
    kwargs = {"vhost": b.vhost} if b.vhost else {}
    conn = stomp.Connection(host_and_ports=b.host_and_ports, **kwargs)
    rec = Recorder()
    conn.set_listener("zz-recorder", rec)
    lab_listener = None
    if listener_factory:
        lab_listener = listener_factory(conn)
        conn.set_listener("", lab_listener)
    clients.track(conn, rec)
    conn.connect(username=OCI_LOGIN, passcode=encoded_password, wait=True)
    sent_cmd, sent_headers = rec.sent_frames[0]
    assert sent_headers["passcode"] == encoded_password != OCI_TOKEN
    return conn, rec, lab_listener


def test_oci_producer_consumer(clients):
    queue_id = queue_ocid()

    # --- producer (stomp_producer.py) ---
    producer, prec, _ = lab_connection(clients)
    sent = []
    for count in range(1, 4):
        message = f"Hello OCI Queue via STOMP! Message {count}"
        if count == 3:
            rid = new_receipt("last")
            producer.send(body=message, destination=queue_id, receipt=rid)
            prec.wait_receipt(rid)
        else:
            producer.send(body=message, destination=queue_id)
        sent.append(message)

    # --- consumer (stomp_consumer.py) ---
    consumer, crec, listener = lab_connection(clients, Listener)
    consumer.subscribe(destination=queue_id, id=1, ack="client-individual")
    frames = listener.wait_for(3)
    assert [f.body for f in frames] == sent
    for f in frames:
        # RabbitMQ reports a bare name as /queue/<name>; either is fine.
        assert f.headers["destination"] in (queue_id, "/queue/" + queue_id), f.headers
        assert f.headers["subscription"] == "1"
        assert f.headers["message-id"]
        assert f.headers.get("redelivered", "false") != "true"
    assert listener.errors == []
    # the acks (sent from on_message, no receipts) are processed before the DISCONNECT receipt
    disconnect_and_wait(consumer, crec)

    # --- "Acknowledged messages will be deleted from the queue" ---
    second, srec, listener2 = lab_connection(clients, Listener)
    second.subscribe(destination=queue_id, id=1, ack="client-individual")
    marker = "marker " + uuid.uuid4().hex
    rid = new_receipt("marker")
    producer.send(body=marker, destination=queue_id, receipt=rid)
    prec.wait_receipt(rid)
    got = collect_until(srec, marker)
    assert [f.body for f in got] == [marker]
    assert [f.body for f in listener2.wait_for(1)] == [marker]
    assert listener2.errors == []


def test_oci_unacked_message_is_not_deleted(clients):
    """Counterpart: a consumer that does not ack leaves the message in the queue;
    the next consumer gets it again (redelivered)."""
    queue_id = queue_ocid()
    producer, prec, _ = lab_connection(clients)
    rid = new_receipt("send")
    producer.send(body="keep me", destination=queue_id, receipt=rid)
    prec.wait_receipt(rid)

    lazy, lrec, _ = lab_connection(clients)
    lazy.subscribe(destination=queue_id, id=1, ack="client-individual")
    assert lrec.next_message().body == "keep me"
    disconnect_and_wait(lazy, lrec)

    consumer, crec, listener = lab_connection(clients, Listener)
    consumer.subscribe(destination=queue_id, id=1, ack="client-individual")
    frames = listener.wait_for(1)
    assert frames[0].body == "keep me"
    assert frames[0].headers.get("redelivered") == "true", frames[0].headers
