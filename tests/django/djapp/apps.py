"""The test project's app: installs the observer (observe.py) in every process Django starts."""
from django.apps import AppConfig


class DjappConfig(AppConfig):
    name = "djapp"

    def ready(self):
        from . import observe

        observe.install()
