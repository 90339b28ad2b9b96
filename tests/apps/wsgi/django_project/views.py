"""The project's views: plain Django, nothing that knows which server runs it."""

from __future__ import annotations

import hashlib

from django import forms
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from tests.apps.wsgi import STATIC


class NoteForm(forms.Form):
    title = forms.CharField(max_length=40)
    count = forms.IntegerField(min_value=0)


def hello(request: HttpRequest, name: str) -> JsonResponse:
    return JsonResponse(
        {
            "greeting": f"Hello, {name}!",
            "path": request.path,
            "reversed": reverse("hello", args=[name]),
            "method": request.method,
        }
    )


def form(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        note = NoteForm(request.POST)
        if note.is_valid():
            data = note.cleaned_data
            return HttpResponse(
                f"saved {data['title']} x{data['count']}", content_type="text/plain"
            )
        return render(request, "form.html", {"form": note}, status=400)
    return render(request, "form.html", {"form": NoteForm()})


@csrf_exempt
def echo(request: HttpRequest) -> JsonResponse:
    body = request.body
    return JsonResponse({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})


def static_file(request: HttpRequest) -> FileResponse:
    return FileResponse(open(STATIC / "hello.txt", "rb"), content_type="text/plain")
