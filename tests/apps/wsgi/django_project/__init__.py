"""A small Django project served unchanged by rootserve: a view, a form with CSRF, a file
through FileResponse, and the admin. Settings: `tests.apps.wsgi.django_project.settings`."""
