#!/usr/bin/env python
"""The test project's manage.py: django-stomp's management commands (pubsub, move_messages,
ack_all_messages) run through it exactly as an application runs them."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
