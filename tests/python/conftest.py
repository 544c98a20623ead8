"""Fixtures for the stomp.py interop suite.

Broker selection (see README.md):
  * STOMP_TEST_BROKER=host:port  -> use that external broker (e.g. RabbitMQ).
      STOMP_TEST_VHOST           -> vhost passed to stomp.py (RabbitMQ needs "/").
      STOMP_TEST_LOGIN / STOMP_TEST_PASSCODE (default guest / guest).
  * otherwise start the Stampede binary ($STAMPEDE_BIN, default
    <repo>/target/debug/stampede) as
      stampede serve --log-format json --data-dir <fresh tmp dir>
    with STAMPEDE__LISTENERS__STOMP__BIND=127.0.0.1:0 (plus per-test overrides) and
    wait for the JSON log line whose fields.message == "ready"; fields.stomp is
    the bound address.
"""

import os
from pathlib import Path

import pytest

from helpers import CONNECTION_CLASSES, Recorder, disconnect_and_wait, wait_event
from stampede_process import StampedeProcess, split_host_port

REPO = Path(__file__).resolve().parents[2]

EXTERNAL = os.environ.get("STOMP_TEST_BROKER")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "stampede_only: Stampede-specific behaviour (docs/behaviour.md); skipped when "
        "STOMP_TEST_BROKER points at an external broker")


def pytest_collection_modifyitems(config, items):
    if not EXTERNAL:
        return
    skip = pytest.mark.skip(reason="stampede_only: STOMP_TEST_BROKER=%s is not Stampede" % EXTERNAL)
    for item in items:
        if "stampede_only" in item.keywords:
            item.add_marker(skip)


class Broker:
    """Where a broker listens and how stomp.py should log in."""

    def __init__(self, host, port, *, vhost=None, login="guest", passcode="guest",
                 external=False, process=None, overrides=None):
        self.host = host
        self.port = port
        self.vhost = vhost
        self.login = login
        self.passcode = passcode
        self.external = external
        self.process = process
        # Settings this instance really runs with (empty for an external broker,
        # which cannot be reconfigured from here).
        self.overrides = dict(overrides or {})

    @property
    def host_and_ports(self):
        return [(self.host, self.port)]

    def connection(self, version="1.1", host_and_ports=None, **kwargs):
        """An unconnected stomp.py connection of the given protocol version."""
        cls = CONNECTION_CLASSES[version]
        if version != "1.0" and self.vhost is not None:
            kwargs.setdefault("vhost", self.vhost)
        return cls(host_and_ports or self.host_and_ports, **kwargs)

    def __repr__(self):
        kind = "external" if self.external else "stampede"
        return "<Broker %s %s:%s>" % (kind, self.host, self.port)


def _stampede_binary():
    return os.environ.get("STAMPEDE_BIN") or str(REPO / "target" / "debug" / "stampede")


def _external_broker():
    host, port = split_host_port(EXTERNAL)
    return Broker(host, port,
                  vhost=os.environ.get("STOMP_TEST_VHOST") or None,
                  login=os.environ.get("STOMP_TEST_LOGIN", "guest"),
                  passcode=os.environ.get("STOMP_TEST_PASSCODE", "guest"),
                  external=True)


def _start_stampede(tmp_path_factory, overrides=None, config=None):
    data_dir = tmp_path_factory.mktemp("stampede-data")
    config_file = None
    if config is not None:
        # `config` is a function of a not-yet-started process (for its `passwd`).
        config_file = data_dir / "broker.toml"
        config_file.write_text(config(StampedeProcess(_stampede_binary(), data_dir)))
    process = StampedeProcess(_stampede_binary(), data_dir, overrides, config_file)
    host, port = process.start()
    return Broker(host, port,
                  login=os.environ.get("STOMP_TEST_LOGIN", "guest"),
                  passcode=os.environ.get("STOMP_TEST_PASSCODE", "guest"),
                  process=process, overrides=overrides)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The broker shared by most tests (tests isolate themselves by queue name)."""
    if EXTERNAL:
        yield _external_broker()
        return
    b = _start_stampede(tmp_path_factory)
    try:
        yield b
    finally:
        b.process.stop()


class Clients:
    """Opens stomp.py connections and closes every one of them after the test."""

    def __init__(self, default_broker):
        self.default_broker = default_broker
        self._open = []

    def connect(self, version="1.1", broker=None, heartbeats=None, login=None, passcode=None,
                listener_name="recorder", connect_headers=None, **conn_kwargs):
        b = broker or self.default_broker
        if heartbeats is not None:
            conn_kwargs["heartbeats"] = heartbeats
        conn = b.connection(version, **conn_kwargs)
        rec = Recorder()
        conn.set_listener(listener_name, rec)
        self.track(conn, rec)
        conn.connect(b.login if login is None else login,
                     b.passcode if passcode is None else passcode,
                     wait=True, headers=connect_headers)
        # wait=True returns as soon as stomp.py marks the connection up, which can
        # be just before the listeners' on_connected has run.
        wait_event(rec.connected, "on_connected")
        return conn, rec

    def track(self, conn, rec=None):
        self._open.append((conn, rec))
        return conn

    def close_all(self):
        while self._open:
            conn, rec = self._open.pop()
            try:
                if rec is not None and conn.is_connected():
                    disconnect_and_wait(conn, rec)
                elif conn.is_connected():
                    conn.disconnect()
            except Exception:  # a broken connection must not mask the test result
                pass
            try:
                conn.transport.running = False
                conn.transport.disconnect_socket()
            except Exception:
                pass


@pytest.fixture
def clients(broker):
    c = Clients(broker)
    try:
        yield c
    finally:
        c.close_all()


@pytest.fixture
def broker_factory(clients, tmp_path_factory):
    """broker_factory({"STAMPEDE__PROTOCOL__HEARTBEAT": "1s"}) -> a Broker.

    `config`, if given, is a function (process -> TOML text) whose result becomes the
    instance's --config file; it may call process.passwd(...) for password hashes.

    Against Stampede each call starts a fresh instance with those environment
    overrides (stopped after the test). Against an external broker the overrides
    cannot be applied and the shared external broker is returned (its
    .overrides is empty, so a test can tell)."""
    started = []

    def make(overrides=None, config=None):
        if EXTERNAL:
            return _external_broker()
        b = _start_stampede(tmp_path_factory, overrides, config)
        started.append(b)
        return b

    try:
        yield make
    finally:
        clients.close_all()  # before the brokers they talk to go away
        for b in started:
            b.process.stop()
