"""The tutorial's callbacks, each also writing what it saw as one JSON line to the file named by
DJANGO_STOMP_RECORD, so the test that started the consumer can see what was processed."""
import json
import logging
import os

logger = logging.getLogger(__name__)


def _record(kind, payload):
    with open(os.environ["DJANGO_STOMP_RECORD"], "a") as f:
        f.write(json.dumps({"kind": kind, "headers": payload.headers, "body": payload.body}) + "\n")


def ack_callback(payload):
    logger.info(payload)
    _record("ack", payload)
    payload.ack()


def nack_callback(payload):
    logger.info(payload)
    _record("nack", payload)
    payload.nack()


def exception_callback(payload):
    logger.info(payload)
    _record("exception", payload)
    raise Exception("Won't process!")
