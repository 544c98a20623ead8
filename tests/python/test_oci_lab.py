"""The OCI Queue STOMP lab (producer / consumer), over plain TCP and over TLS.

As in the lab: the destination is a bare queue OCID, the passcode is sent
base64-encoded, the consumer subscribes with ack='client-individual' and acks
each message with conn.ack(id=frame.headers['message-id'],
subscription=frame.headers['subscription']) (stomp.Connection = STOMP 1.1).

Two targets (the `lab` fixture):
  * plain: the suite's broker. Credentials STOMP_TEST_OCI_LOGIN (default
    'stampede-tenancy/oci-user', the lab's '<tenancy>/<user>' form) and
    STOMP_TEST_OCI_TOKEN (default 'oci-auth-token'); Stampede in auth.mode=open
    accepts them as they are; for RabbitMQ create a user whose password is the
    base64 text (see README.md).
  * tls (Stampede only): as OCI serves it — an OCI-strict TLS listener (self_signed, the
    development certificate trusted through SSL_CERT_FILE, so the lab's plain
    conn.set_ssl(for_hosts=hosts) verifies it), auth.mode=users with the user's
    passcode_encoding=base64, and a 2 s visibility timeout for OCID queues.
"""

import base64
import os
import ssl
import threading
import uuid
from pathlib import Path

import pytest
import stomp

from helpers import WAIT, Recorder, collect_until, disconnect_and_wait, new_receipt, wait_event

# The lab's consumer passes ssl_version=ssl.PROTOCOL_TLS, which Python deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated")

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


class Lab:
    """Where the lab's scripts connect and with what."""

    def __init__(self, hosts, username, password, tls=False, vhost=None, broker=None):
        self.hosts = hosts
        self.username = username
        self.password = password
        self.tls = tls
        self.vhost = vhost
        self.broker = broker


def oci_config(process):
    return """
[auth]
mode = "users"
[auth.users."%s"]
password_hash = "%s"
passcode_encoding = "base64"

[listeners.oci]
bind = "127.0.0.1:0"
self_signed = true
oci_strict = true

[queues."ocid1.queue.*"]
visibility_timeout = "2s"
""" % (OCI_LOGIN, process.passwd(OCI_TOKEN))


@pytest.fixture(params=["plain", "tls"])
def lab(request, clients, broker_factory, monkeypatch):
    if request.param == "plain":
        b = clients.default_broker
        return Lab(b.host_and_ports, OCI_LOGIN, OCI_TOKEN, vhost=b.vhost)
    return start_tls_lab(clients, broker_factory, monkeypatch)


@pytest.fixture
def tls_lab(clients, broker_factory, monkeypatch):
    return start_tls_lab(clients, broker_factory, monkeypatch)


def start_tls_lab(clients, broker_factory, monkeypatch):
    if clients.default_broker.external:
        pytest.skip("the TLS lab configures its own Stampede (users, TLS listener)")
    b = broker_factory(config=oci_config)
    host, port = b.process.listener("oci")
    cert = Path(b.process.data_dir) / "tls" / "self-signed.pem"
    # How a lab user trusts the development certificate without touching the scripts:
    # OpenSSL's default verify paths honour SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return Lab([("localhost", port)], OCI_LOGIN, OCI_TOKEN, tls=True, broker=b)


def lab_connection(clients, lab, listener_factory=None, password=None, consumer=False):
    encoded_password = base64.b64encode((password or lab.password).encode("utf-8")).decode("utf-8")
    kwargs = {"vhost": lab.vhost} if lab.vhost else {}
    conn = stomp.Connection(host_and_ports=lab.hosts, **kwargs)
    if lab.tls:
        # The producer's and the consumer's calls, as the lab writes them.
        if consumer:
            conn.set_ssl(for_hosts=lab.hosts, ssl_version=ssl.PROTOCOL_TLS)
        else:
            conn.set_ssl(for_hosts=lab.hosts)
    rec = Recorder()
    conn.set_listener("zz-recorder", rec)
    lab_listener = None
    if listener_factory:
        lab_listener = listener_factory(conn)
        conn.set_listener("", lab_listener)
    clients.track(conn, rec)
    conn.connect(username=lab.username, passcode=encoded_password, wait=True)
    sent_cmd, sent_headers = rec.sent_frames[0]
    assert sent_headers["passcode"] == encoded_password != lab.password
    return conn, rec, lab_listener


def test_oci_producer_consumer(clients, lab):
    queue_id = queue_ocid()

    # --- producer (stomp_producer.py) ---
    producer, prec, _ = lab_connection(clients, lab)
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
    consumer, crec, listener = lab_connection(clients, lab, Listener, consumer=True)
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
    second, srec, listener2 = lab_connection(clients, lab, Listener, consumer=True)
    second.subscribe(destination=queue_id, id=1, ack="client-individual")
    marker = "marker " + uuid.uuid4().hex
    rid = new_receipt("marker")
    producer.send(body=marker, destination=queue_id, receipt=rid)
    prec.wait_receipt(rid)
    got = collect_until(srec, marker)
    assert [f.body for f in got] == [marker]
    assert [f.body for f in listener2.wait_for(1)] == [marker]
    assert listener2.errors == []


def test_oci_unacked_message_is_not_deleted(clients, lab):
    """Counterpart: a consumer that does not ack leaves the message in the queue;
    the next consumer gets it again (redelivered)."""
    queue_id = queue_ocid()
    producer, prec, _ = lab_connection(clients, lab)
    rid = new_receipt("send")
    producer.send(body="keep me", destination=queue_id, receipt=rid)
    prec.wait_receipt(rid)

    lazy, lrec, _ = lab_connection(clients, lab)
    lazy.subscribe(destination=queue_id, id=1, ack="client-individual")
    assert lrec.next_message().body == "keep me"
    disconnect_and_wait(lazy, lrec)

    consumer, crec, listener = lab_connection(clients, lab, Listener, consumer=True)
    consumer.subscribe(destination=queue_id, id=1, ack="client-individual")
    frames = listener.wait_for(1)
    assert frames[0].body == "keep me"
    assert frames[0].headers.get("redelivered") == "true", frames[0].headers


def test_oci_unacked_message_returns_after_the_visibility_timeout(clients, tls_lab):
    """OCI's visibility timeout: a message received and not deleted becomes visible
    again when the timeout passes, while its consumer is still connected, marked
    redelivered; the ACK of that second delivery deletes it."""
    queue_id = queue_ocid()
    producer, prec, _ = lab_connection(clients, tls_lab)
    consumer, crec, _ = lab_connection(clients, tls_lab, consumer=True)
    consumer.subscribe(destination=queue_id, id=1, ack="client-individual")
    rid = new_receipt("send")
    producer.send(body="process me", destination=queue_id, receipt=rid)
    prec.wait_receipt(rid)
    first = crec.next_message()
    assert first.body == "process me"
    assert first.headers.get("redelivered", "false") != "true"
    # Not acked: the 2 s visibility timeout hands it out again on the same subscription.
    again = crec.next_message(timeout=WAIT)
    assert again.body == "process me"
    assert again.headers.get("redelivered") == "true", again.headers
    consumer.ack(id=again.headers["message-id"], subscription=again.headers["subscription"])
    marker = "marker " + uuid.uuid4().hex
    rid = new_receipt("marker")
    producer.send(body=marker, destination=queue_id, receipt=rid)
    prec.wait_receipt(rid)
    assert [f.body for f in collect_until(crec, marker)] == [marker]


def refused(tls_lab, passcode):
    """CONNECT over TLS with `passcode` as it goes on the wire; the ERROR the broker sent."""
    # One attempt: stomp.py would otherwise reconnect and try the same passcode again.
    conn = stomp.Connection(host_and_ports=tls_lab.hosts, reconnect_attempts_max=1)
    conn.set_ssl(for_hosts=tls_lab.hosts)
    rec = Recorder()
    conn.set_listener("rec", rec)
    conn.connect(username=tls_lab.username, passcode=passcode, wait=False)
    error = rec.errors.get(timeout=WAIT)
    # stomp.py 9.0 over TLS reads without blocking and takes end of stream for "no data
    # yet", so it never reports the close that follows the ERROR (the Rust e2e tests
    # assert it); stop its reader instead.
    conn.transport.running = False
    conn.transport.disconnect_socket()
    return error


def test_oci_wrong_or_unencoded_tokens_are_refused(tls_lab):
    wrong = base64.b64encode(b"not-the-token").decode("ascii")
    for passcode in (wrong, OCI_TOKEN, "%%% not base64"):
        error = refused(tls_lab, passcode)
        assert error.headers["message"] == "authentication failed", error.headers
    line = tls_lab.broker.process.wait_for_log("login refused", OCI_LOGIN)
    assert "credentials" in line


def test_oci_tls_without_trusting_the_certificate_fails(tls_lab, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    conn = stomp.Connection(host_and_ports=tls_lab.hosts, reconnect_attempts_max=1)
    conn.set_ssl(for_hosts=tls_lab.hosts)
    encoded = base64.b64encode(tls_lab.password.encode("utf-8")).decode("utf-8")
    with pytest.raises(stomp.exception.ConnectFailedException):
        conn.connect(username=tls_lab.username, passcode=encoded, wait=True)
    tls_lab.broker.process.wait_for_log("transport handshake failed")


@pytest.mark.stampede_only
def test_oci_channels(clients, lab):
    """`<queue OCID>/<channel>` as OCI documents it: a SEND there stores the channel with
    the message, a channel's subscriber gets only that channel in order, the OCID's
    subscriber gets the rest."""
    queue_id = queue_ocid()
    producer, prec, _ = lab_connection(clients, lab)
    for count in range(1, 4):
        for channel in ("eu", "us"):
            producer.send(body=f"{channel} {count}", destination=f"{queue_id}/{channel}")
    rid = new_receipt("last")
    producer.send(body="no channel", destination=queue_id, receipt=rid)
    prec.wait_receipt(rid)

    eu, _, eu_listener = lab_connection(clients, lab, Listener, consumer=True)
    eu.subscribe(destination=f"{queue_id}/eu", id=1, ack="client-individual")
    frames = eu_listener.wait_for(3)
    assert [f.body for f in frames] == ["eu 1", "eu 2", "eu 3"]
    assert {f.headers["destination"] for f in frames} == {f"{queue_id}/eu"}

    rest, _, rest_listener = lab_connection(clients, lab, Listener, consumer=True)
    rest.subscribe(destination=queue_id, id=1, ack="client-individual")
    frames = rest_listener.wait_for(4)
    assert [f.body for f in frames] == ["us 1", "us 2", "us 3", "no channel"]
    assert [f.headers["destination"] for f in frames] == [f"{queue_id}/us"] * 3 + [queue_id]
    assert eu_listener.errors == [] and rest_listener.errors == []
