"""WSGI apps the end-to-end tests serve, importable as `tests.apps.wsgi.NAME` (also by the CLI).

`flask_app` is a Flask app and `django_project` a Django project, each written as its
framework's docs show and served unchanged; `static/` holds the file both send.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC"]

STATIC = Path(__file__).resolve().parent / "static"
