"""A module that fails while being imported (the CLI must exit 3 naming the exception)."""

raise ZeroDivisionError("the app module broke at import time")
