"""Fixtures for the OCI Queue REST suite: the real OCI Python SDK (and CLI) against Stampede.

The broker is the real binary ($STAMPEDE_BIN, default <repo>/target/debug/stampede), started by
tests/python/stampede_process.py on free ports; the REST API is on its HTTP listener
(`process.http_address`) under /20210201. The SDK is configured as a developer would point
unmodified code at a local stand-in: a throwaway RSA key and fake OCIDs in the config, and
`service_endpoint="http://<http listener>"`.
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))

from stampede_process import StampedeProcess, split_host_port  # noqa: E402

import oci  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

USER = "ocid1.user.oc1..aaaalocaluser"
TENANCY = "ocid1.tenancy.oc1..aaaalocaltenancy"
FINGERPRINT = "11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff"
REGION = "us-ashburn-1"
KEY_ID = "%s/%s/%s" % (TENANCY, USER, FINGERPRINT)
COMPARTMENT = "ocid1.compartment.oc1..aaaalocalcompartment"

# Upper bound for waiting on any one condition; only reached when something is broken.
WAIT = 15.0


def stampede_binary():
    return os.environ.get("STAMPEDE_BIN") or str(REPO / "target" / "debug" / "stampede")


def new_queue_id():
    """An OCID-shaped queue id nobody has used: in open mode its first request creates it."""
    return "ocid1.queue.oc1..aaaa" + uuid.uuid4().hex


# --- keys and SDK configuration ------------------------------------------------------------

class KeyPair:
    def __init__(self, directory, name):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.TraditionalOpenSSL,
                                             serialization.NoEncryption())
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.private_file = Path(directory) / (name + ".pem")
        self.public_file = Path(directory) / (name + "_public.pem")
        self.private_file.write_bytes(self.private_pem)
        os.chmod(self.private_file, 0o600)
        self.public_file.write_bytes(self.public_pem)


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """Two throwaway key pairs: `main` (registered in users mode) and `other` (never registered)."""
    d = tmp_path_factory.mktemp("oci-keys")
    return {"main": KeyPair(d, "main"), "other": KeyPair(d, "other")}


def sdk_config(key_file):
    config = {"user": USER, "tenancy": TENANCY, "fingerprint": FINGERPRINT,
              "region": REGION, "key_file": str(key_file)}
    oci.config.validate_config(config)
    return config


@pytest.fixture(scope="session")
def config(keys):
    return sdk_config(keys["main"].private_file)


def queue_client(config, base_url):
    return oci.queue.QueueClient(config, service_endpoint=base_url,
                                 retry_strategy=oci.retry.NoneRetryStrategy())


def admin_client(config, base_url):
    return oci.queue.QueueAdminClient(config, service_endpoint=base_url,
                                      retry_strategy=oci.retry.NoneRetryStrategy())


# --- brokers -----------------------------------------------------------------------------

class Broker:
    """A running Stampede: its process, REST base URL and STOMP address."""

    def __init__(self, process, stomp):
        self.process = process
        self.stomp = stomp
        if not process.http_address:
            pytest.fail("Stampede's 'ready' event names no HTTP listener\n%s"
                        % process.format_output(), pytrace=False)
        self.http_address = process.http_address
        self.base_url = "http://" + process.http_address

    @property
    def data_dir(self):
        return self.process.data_dir

    def raw(self, method, path, body=None, headers=None, timeout=WAIT + 40):
        """One plain HTTP request (no SDK, no signing, no retries) -> RawResponse."""
        host, port = split_host_port(self.http_address)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if body is not None and not isinstance(body, (bytes, bytearray)):
                body = json.dumps(body).encode("utf-8")
                hdrs.setdefault("content-type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return RawResponse(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()


    def long_polls(self, queue_id):
        """GetMessages requests waiting in `queue_id`, from the broker's metrics."""
        text = self.raw("GET", "/metrics").body.decode("utf-8")
        prefix = 'stampede_queue_long_polls{queue="%s"} ' % queue_id
        for line in text.splitlines():
            if line.startswith(prefix):
                return int(float(line[len(prefix):]))
        return 0

    def wait_long_polls(self, queue_id, n):
        """Until `n` long polls wait in `queue_id` (the broker counts them as they register)."""
        wait_until(lambda: self.long_polls(queue_id) == n,
                   "%d long polls waiting in %s" % (n, queue_id))


class RawResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            raise AssertionError("response %d is not JSON: %r" % (self.status, self.body[:500]))

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:300])


def start_broker(data_dir, overrides=None, config_text=None):
    config_file = None
    if config_text is not None:
        config_file = Path(data_dir) / "broker.toml"
        if callable(config_text):
            config_text = config_text(StampedeProcess(stampede_binary(), data_dir))
        config_file.write_text(config_text)
    process = StampedeProcess(stampede_binary(), data_dir, overrides, config_file)
    stomp = process.start()
    return Broker(process, stomp)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The open-mode broker most tests share; each test uses its own queue ids."""
    b = start_broker(tmp_path_factory.mktemp("stampede-oci"))
    try:
        yield b
    finally:
        b.process.stop()


@pytest.fixture
def broker_factory(tmp_path_factory):
    """broker_factory(overrides=..., config_text=..., data_dir=...) -> a fresh Broker, stopped
    after the test. Pass the data_dir of an earlier one to restart on the same storage;
    config_text may be a function of the not-yet-started process (for process.passwd)."""
    started = []

    def make(overrides=None, config_text=None, data_dir=None):
        d = data_dir or tmp_path_factory.mktemp("stampede-oci-own")
        b = start_broker(d, overrides, config_text)
        started.append(b)
        return b

    try:
        yield make
    finally:
        for b in started:
            b.process.stop()


@pytest.fixture
def qc(config, broker):
    return queue_client(config, broker.base_url)


@pytest.fixture
def admin(config, broker):
    return admin_client(config, broker.base_url)


# --- helpers shared by the tests -----------------------------------------------------------

def put(qc, queue_id, *contents, channel=None, properties=None):
    """PutMessages of `contents` (optionally all on `channel`) -> the PutMessages result."""
    m = oci.queue.models
    entries = []
    for c in contents:
        meta = None
        if channel is not None or properties is not None:
            meta = m.MessageMetadata(channel_id=channel, custom_properties=properties)
        entries.append(m.PutMessagesDetailsEntry(content=c, metadata=meta))
    resp = qc.put_messages(queue_id, m.PutMessagesDetails(messages=entries))
    assert resp.status == 200, resp.status
    assert len(resp.data.messages) == len(contents), resp.data
    return resp.data


def get(qc, queue_id, **kwargs):
    resp = qc.get_messages(queue_id, **kwargs)
    assert resp.status == 200, resp.status
    return resp.data.messages


def get_n(qc, queue_id, n, visibility=30, timeout=WAIT, **kwargs):
    """Long-poll until `n` messages have been received (bounded), FIFO order kept."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("got %d of %d messages: %r" % (len(got), n, [g.content for g in got]))
        got += get(qc, queue_id, visibility_in_seconds=visibility,
                   timeout_in_seconds=max(1, min(10, int(left))),
                   limit=min(20, n - len(got)), **kwargs)
    assert len(got) == n, [g.content for g in got]
    return got


def stats(qc, queue_id, **kwargs):
    resp = qc.get_stats(queue_id, **kwargs)
    assert resp.status == 200, resp.status
    return resp.data


def counts(s):
    """(visible, in flight) of the queue and of its DLQ, from a QueueStats."""
    return ((s.queue.visible_messages, s.queue.in_flight_messages),
            (s.dlq.visible_messages, s.dlq.in_flight_messages))


def wait_until(condition, what, timeout=WAIT, interval=0.1):
    """A bounded retry loop on a condition that no event announces (e.g. a stats count)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("waited %.0fs for %s" % (timeout, what))
        time.sleep(interval)


def wait_work_request(admin, response, status="SUCCEEDED"):
    """The work request named by an admin call's opc-work-request-id, once it reached `status`."""
    assert response.status == 202, response.status
    wr_id = response.headers.get("opc-work-request-id")
    assert wr_id, response.headers
    wr = oci.wait_until(admin, admin.get_work_request(wr_id), "status", status,
                        max_interval_seconds=1, max_wait_seconds=int(WAIT))
    return wr.data


def create_queue(admin, display_name=None, compartment_id=COMPARTMENT, **attrs):
    """CreateQueue + wait for its work request -> (queue id, WorkRequest)."""
    details = oci.queue.models.CreateQueueDetails(
        display_name=display_name or "it-" + uuid.uuid4().hex[:12],
        compartment_id=compartment_id, **attrs)
    wr = wait_work_request(admin, admin.create_queue(details))
    assert wr.operation_type == "CREATE_QUEUE", wr
    assert wr.resources, wr
    queue_id = wr.resources[0].identifier
    assert queue_id and queue_id.startswith("ocid1.queue."), wr
    return queue_id, wr


def service_error(call, *args, **kwargs):
    with pytest.raises(oci.exceptions.ServiceError) as info:
        call(*args, **kwargs)
    return info.value


class Background(threading.Thread):
    """Runs fn() in a thread and keeps its result or exception."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = None
        self.error = None
        self.finished_at = None

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # reported by .value()
            self.error = e
        self.finished_at = time.monotonic()

    def value(self, timeout=WAIT + 40):
        self.join(timeout)
        assert not self.is_alive(), "background call still running after %.0fs" % timeout
        if self.error is not None:
            raise self.error
        return self.result


def venv_bin(name):
    """A console script of the interpreter running the tests (the venv's `oci`)."""
    return str(Path(sys.executable).parent / name)


def run(cmd, env=None, timeout=120):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=env, timeout=timeout, text=True)
