from __future__ import annotations

from django.contrib import admin
from django.urls import path
from tests.apps.wsgi.django_project import views

urlpatterns = [
    path("hello/<str:name>/", views.hello, name="hello"),
    path("form/", views.form, name="form"),
    path("echo/", views.echo, name="echo"),
    path("file/", views.static_file, name="file"),
    path("admin/", admin.site.urls),
]
