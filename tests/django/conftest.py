"""Fixtures for the django-stomp suite (see support.py): one Stampede for the session with the
test project's settings pointed at it, consumers started per test and killed after it, and a
stomp.py client to look at queues."""

import os

import pytest

from support import Consumer, Peek, make_broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djapp.settings")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = make_broker(tmp_path_factory.mktemp("stampede-data"))
    os.environ.update(b.env())
    import django

    django.setup()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def consumers(broker, tmp_path):
    started = []

    def start(*args, env=None, on=None):
        c = Consumer(on or broker, tmp_path, *args, env=env)
        started.append(c)
        return c

    try:
        yield start
    finally:
        for c in started:
            c.kill()


@pytest.fixture
def peek(broker):
    p = Peek(broker)
    try:
        yield p
    finally:
        p.close()
