"""A minimal Django project with django-stomp installed, configured the way the django-stomp
README and tutorial configure it. The broker's address and the per-test switches come from the
environment, so each consumer process the tests start can get its own."""
import os

SECRET_KEY = "stampede-tests"
INSTALLED_APPS = ["django_stomp", "djapp"]
DATABASES = {}
USE_TZ = True

STOMP_SERVER_HOST = os.environ.get("STOMP_SERVER_HOST", "127.0.0.1")
STOMP_SERVER_PORT = os.environ.get("STOMP_SERVER_PORT", "61613")
STOMP_SERVER_USER = os.environ.get("STOMP_SERVER_USER", "guest")
STOMP_SERVER_PASSWORD = os.environ.get("STOMP_SERVER_PASSWORD", "guest")
STOMP_SERVER_VHOST = os.environ.get("STOMP_SERVER_VHOST") or None
STOMP_USE_SSL = False
# The tutorial's heart-beats.
STOMP_OUTGOING_HEARTBEAT = 10000
STOMP_INCOMING_HEARTBEAT = 10000
STOMP_PROCESS_MSG_ON_BACKGROUND = os.environ.get("STOMP_PROCESS_MSG_ON_BACKGROUND", "True")
STOMP_DURABLE_TOPIC_SUBSCRIPTION = os.environ.get("STOMP_DURABLE_TOPIC_SUBSCRIPTION", "False")
STOMP_LISTENER_CLIENT_ID = os.environ.get("STOMP_LISTENER_CLIENT_ID") or None
# What RabbitMQ's consumer tag is made of (T_<id>-listener).
STOMP_SUBSCRIPTION_ID = os.environ.get("STOMP_SUBSCRIPTION_ID") or None
STOMP_WAIT_TO_CONNECT = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_stomp": {"handlers": ["console"], "level": "INFO"}},
}
