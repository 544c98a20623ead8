"""What the django-stomp suite works with: the Stampede binary (started as tests/python starts
it), django-stomp consumers run as `manage.py` subprocesses the way an application runs them, and
a stomp.py client that looks at queues from outside.

Consumers are stopped with SIGKILL: django-stomp's `pubsub` reconnects after SIGTERM (its
listener loop does not look at the shutdown flag), and a consumer that dies is what a durable
subscription has to survive anyway."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Appended, not prepended: tests/python has a conftest.py of its own.
sys.path.append(str(REPO / "tests" / "python"))

from helpers import WAIT, Recorder, wait_event  # noqa: E402
from stampede_process import StampedeProcess, split_host_port  # noqa: E402


def _binary():
    return os.environ.get("STAMPEDE_BIN") or str(REPO / "target" / "debug" / "stampede")


def make_broker(data_dir):
    """The broker under test: Stampede started here, or the peer DJANGO_STOMP_TEST_BROKER names."""
    if os.environ.get("DJANGO_STOMP_TEST_BROKER"):
        return PeerBroker(os.environ["DJANGO_STOMP_TEST_BROKER"])
    return Broker(data_dir)


class Broker:
    """A running Stampede: where it listens, and its process (for its logs and metrics)."""

    name = "stampede"

    def __init__(self, data_dir):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.process = None
        self.start()

    def start(self):
        # RabbitMQ's management API on a free port, for the suites that read it as
        # django-stomp's own test helpers do (test_rabbitmq_management.py).
        overrides = {"STAMPEDE__LISTENERS__RABBITMQ_MANAGEMENT__BIND": "127.0.0.1:0"}
        self.process = StampedeProcess(_binary(), self.data_dir, overrides=overrides)
        self.host, self.port = self.process.start()
        self.management = Management(*self.process.listener("rabbitmq_management"))
        return self

    def stop(self):
        self.process.stop()

    def restart(self):
        self.stop()
        self.start()

    def env(self):
        return {"STOMP_SERVER_HOST": self.host, "STOMP_SERVER_PORT": str(self.port)}

    def metric(self, name, queue):
        """A per-queue metric's value, 0 when the queue has none."""
        with urllib.request.urlopen("http://%s/metrics" % self.process.http_address,
                                    timeout=WAIT) as r:
            text = r.read().decode()
        prefix = '%s{queue="%s"} ' % (name, queue)
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix):])
        return 0.0

    def wait_metric(self, name, queue, want, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            got = self.metric(name, queue)
            if got == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError("%s{queue=%r} is %s, wanted %s" % (name, queue, got, want))
            time.sleep(0.05)

    def wait_consumers_gone(self, queue):
        """Until the broker has seen a killed consumer's connection close, so the next one does
        not meet its predecessor's subscription."""
        self.wait_metric("stampede_queue_consumers", queue, 0)


class PeerBroker:
    """RabbitMQ or ActiveMQ, already running (scripts/peers/), for the side-by-side run in
    tests/django/README.md. The same flows, observed only through STOMP: a peer has no
    Stampede metrics, so `wait_consumers_gone` returns at once and django-stomp's reconnect
    loop absorbs a subscription the peer still holds."""

    def __init__(self, address):
        self.host, self.port = split_host_port(address)
        self.name = os.environ.get("DJANGO_STOMP_TEST_PEER", "peer")
        self.restart_command = os.environ.get("DJANGO_STOMP_TEST_RESTART")
        # RabbitMQ's management plugin, where RabbitMQ serves it unless told otherwise.
        self.management = None
        if self.name == "rabbitmq":
            self.management = Management(*split_host_port(
                os.environ.get("DJANGO_STOMP_TEST_MANAGEMENT", "%s:15672" % self.host)))

    def env(self):
        return {"STOMP_SERVER_HOST": self.host, "STOMP_SERVER_PORT": str(self.port)}

    def stop(self):
        pass

    def restart(self):
        if not self.restart_command:
            pytest.skip("DJANGO_STOMP_TEST_RESTART names no command that restarts %s" % self.name)
        subprocess.run(self.restart_command, shell=True, check=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_consumers_gone(self, queue):
        pass


class Management:
    """RabbitMQ's management API, called as django-stomp's own test helpers call it: guest/guest
    Basic credentials, JSON answers (an error's too, as `requests` hands it over)."""

    def __init__(self, host, port):
        self.base = "http://%s:%d" % (host, port)
        token = base64.b64encode(b"guest:guest").decode()
        self.headers = {"Authorization": "Basic " + token}

    def get(self, path):
        return self._call(urllib.request.Request(self.base + path, headers=self.headers))

    def post(self, path, body):
        request = urllib.request.Request(self.base + path, data=body.encode(), method="POST",
                                         headers=self.headers)
        return self._call(request)

    def _call(self, request):
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())


class Consumer:
    """`manage.py <command> <args>` in a process of its own, its callbacks recorded."""

    def __init__(self, broker, tmp_path, *args, env=None):
        self.record = tmp_path / ("record-%s.jsonl" % uuid.uuid4().hex)
        self.log = tmp_path / ("consumer-%s.log" % uuid.uuid4().hex)
        full = dict(os.environ)
        full.update(broker.env())
        full.update(env or {})
        full["DJANGO_STOMP_RECORD"] = str(self.record)
        self.events = tmp_path / ("events-%s.jsonl" % uuid.uuid4().hex)
        full["DJANGO_STOMP_EVENTS"] = str(self.events)
        self.args = args
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=HERE, env=full,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def records(self, n, timeout=WAIT):
        """The first `n` callback records, waiting for them."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.record.read_text().splitlines() if self.record.exists() else []
            if len(lines) >= n:
                return [json.loads(line) for line in lines[:n]]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("%s: %d of %d records\n%s" % (
                    self.args, len(lines), n, self.log.read_text()[-4000:]))
            time.sleep(0.05)

    def _events(self, kind):
        lines = self.events.read_text().splitlines() if self.events.exists() else []
        return [e for e in map(json.loads, lines) if e["event"] in kind]

    def wait_events(self, kind, n, timeout=WAIT, destination=None):
        """Until the broker has sent RECEIPTs for `n` frames of `kind` (djapp/observe.py)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [e for e in self._events(kind)
                   if destination is None or e.get("destination") == destination]
            if len(got) >= n:
                return got
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("%s: %d of %d %s receipts\n%s" % (
                    self.args, len(got), n, kind, self.log.read_text()[-4000:]))
            time.sleep(0.05)

    def wait_subscribed(self, destination):
        """Until the broker confirmed a SUBSCRIBE to `destination`: the subscription (and, for a
        virtual topic or a durable subscription, the queue that keeps its messages) exists."""
        self.wait_events(("subscribed",), 1, destination=destination)

    def wait_settled(self, n):
        """Until the broker confirmed `n` ACKs or NACKs."""
        self.wait_events(("acked", "nacked"), n)

    def count(self):
        return len(self.record.read_text().splitlines()) if self.record.exists() else 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=WAIT)
        self._log.close()


class Peek:
    """A stomp.py client that reads a queue from outside django-stomp."""

    def __init__(self, broker):
        import stomp

        self.rabbitmq = broker.name == "rabbitmq"
        vhost = os.environ.get("STOMP_SERVER_VHOST") or None
        self.conn = stomp.Connection12([(broker.host, broker.port)], vhost=vhost)
        self.rec = Recorder()
        self.conn.set_listener("rec", self.rec)
        self.conn.connect(os.environ.get("STOMP_SERVER_USER", "guest"),
                          os.environ.get("STOMP_SERVER_PASSWORD", "guest"), wait=True)
        wait_event(self.rec.connected, "CONNECTED")

    def messages(self, destination, n):
        """The next `n` messages of `destination`, then proof (a marker through it) that no
        other was waiting; every one is acknowledged."""
        sub = uuid.uuid4().hex
        declare = self._declare(destination)
        self.conn.subscribe(destination, sub, ack="client-individual", headers=declare)
        got = [self.rec.next_message(what="message %d of %s" % (i + 1, destination))
               for i in range(n)]
        marker = "marker-" + uuid.uuid4().hex
        rid = "r-" + marker
        self.conn.send(destination, marker, receipt=rid, headers=declare)
        self.rec.wait_receipt(rid)
        after = self.rec.next_message(what="the marker")
        assert after.body == marker, "more than %d messages in %s: %r" % (n, destination, after)
        for m in got + [after]:
            self.conn.ack(m.headers["ack"])
        self.conn.unsubscribe(sub)
        return got

    def _declare(self, destination):
        """RabbitMQ refuses a SUBSCRIBE or SEND whose queue arguments differ from those the
        queue was declared with, so on RabbitMQ the peek repeats django-stomp's."""
        if not self.rabbitmq:
            return {}
        from django_stomp.helpers import create_dlq_destination_from_another_destination

        return {"durable": "true", "auto-delete": "false", "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key":
                    create_dlq_destination_from_another_destination(destination)}

    def close(self):
        self.conn.disconnect()


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])
