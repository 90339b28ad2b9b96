"""Apps the end-to-end tests serve, importable as `tests.apps.NAME` (also by the CLI)."""
