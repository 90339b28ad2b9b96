"""Finding the app (every form APP takes, every way it fails) and telling ASGI from WSGI."""

from __future__ import annotations

import functools
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rootserve.demo.app import app as demo_app
from rootserve.loading import AppLoadError, detect_interface, load_app

APP_SOURCE = """\
async def app(scope, receive, send):
    pass

import types

holder = types.SimpleNamespace(app=app)
number = 42

def make():
    return app

def make_broken():
    raise ValueError("no database")
"""


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Any]:
    """Write a uniquely named module into tmp_path; undo sys.path and sys.modules after."""
    saved_path = list(sys.path)
    saved_modules = dict(sys.modules)

    def write(source: str = APP_SOURCE, *, name: str | None = None, folder: str = "") -> str:
        name = name or f"rs_app_{uuid.uuid4().hex[:12]}"
        where = tmp_path / folder
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    yield write
    sys.path[:] = saved_path
    for name in set(sys.modules) - set(saved_modules):
        del sys.modules[name]
    for name, module in saved_modules.items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module  # put back what a test replaced


# -- the forms of APP ----------------------------------------------------------------------


def test_module_attribute(place: Any, tmp_path: Path):
    name = place()
    app = load_app(f"{name}:app", app_dir=str(tmp_path))
    assert app is sys.modules[name].app
    assert sys.path[0] == str(tmp_path.resolve())  # --app-dir goes first on sys.path


def test_dotted_attribute(place: Any, tmp_path: Path):
    name = place()
    assert load_app(f"{name}:holder.app", app_dir=str(tmp_path)) is sys.modules[name].app


@pytest.mark.parametrize(("spec", "factory"), [(":make()", False), (":make", True)])
def test_factory(place: Any, tmp_path: Path, spec: str, factory: bool):
    name = place()
    app = load_app(name + spec, factory=factory, app_dir=str(tmp_path))
    assert app is sys.modules[name].app


def test_file_path(place: Any, tmp_path: Path):
    name = place(folder="deploy/site")
    app = load_app(f"deploy/site/{name}.py:app", app_dir=str(tmp_path))
    assert callable(app)
    assert app.__module__ == name


def test_no_app_is_the_demo():
    assert load_app(None) is demo_app


def test_package_module(tmp_path: Path, place: Any):
    package = f"rs_pkg_{uuid.uuid4().hex[:12]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    place(name="web", folder=package)
    app = load_app(f"{package}.web:app", app_dir=str(tmp_path))
    assert app is sys.modules[f"{package}.web"].app


# -- each failure is one AppLoadError naming the fix -----------------------------------------


@pytest.mark.parametrize("spec", ["main", "main:", ":app", ""])
def test_malformed_spec(spec: str):
    with pytest.raises(AppLoadError, match="must be 'module:attribute'"):
        load_app(spec)


def test_module_not_found_mentions_app_dir(tmp_path: Path, place: Any):
    with pytest.raises(AppLoadError) as caught:
        load_app("rs_no_such_module:app", app_dir=str(tmp_path))
    assert "cannot import 'rs_no_such_module'" in str(caught.value)
    assert "--app-dir" in str(caught.value)


def test_missing_dependency_says_install(place: Any, tmp_path: Path):
    name = place("import rs_not_installed_anywhere\n")
    with pytest.raises(AppLoadError) as caught:
        load_app(f"{name}:app", app_dir=str(tmp_path))
    assert "rs_not_installed_anywhere" in str(caught.value)
    assert "install it in this environment" in str(caught.value)


def test_module_raising_at_import(place: Any, tmp_path: Path):
    name = place("x = 1\nraise ZeroDivisionError('broken on purpose')\n")
    with pytest.raises(AppLoadError) as caught:
        load_app(f"{name}:app", app_dir=str(tmp_path))
    message = str(caught.value)
    assert f"importing '{name}' raised ZeroDivisionError: broken on purpose" in message
    assert f"{name}.py, line 2" in message


def test_syntax_error_names_its_file_and_line_not_the_import_machinery(place: Any, tmp_path: Path):
    name = place("x = 1\ndef app(:\n")
    with pytest.raises(AppLoadError) as caught:
        load_app(f"{name}:app", app_dir=str(tmp_path))
    message = str(caught.value)
    assert f"importing '{name}' raised SyntaxError: " in message
    assert f"({name}.py, line 2)" in message
    assert "frozen" not in message and message.count("line") == 1


def test_file_raising_at_import(place: Any, tmp_path: Path):
    name = place("raise KeyError('k')\n")
    with pytest.raises(AppLoadError, match="raised KeyError"):
        load_app(f"{name}.py:app", app_dir=str(tmp_path))


def test_missing_file(tmp_path: Path, place: Any):
    with pytest.raises(AppLoadError, match="no file"):
        load_app("nowhere/web.py:app", app_dir=str(tmp_path))


def test_missing_attribute_lists_what_there_is(place: Any, tmp_path: Path):
    name = place()
    with pytest.raises(AppLoadError) as caught:
        load_app(f"{name}:application", app_dir=str(tmp_path))
    message = str(caught.value)
    assert "has no attribute 'application'" in message
    assert "app" in message and "make" in message


def test_not_callable(place: Any, tmp_path: Path):
    name = place()
    with pytest.raises(AppLoadError, match="is a int, not a callable app"):
        load_app(f"{name}:number", app_dir=str(tmp_path))


def test_factory_raising(place: Any, tmp_path: Path):
    name = place()
    with pytest.raises(AppLoadError, match="factory 'make_broken' raised ValueError: no database"):
        load_app(f"{name}:make_broken()", app_dir=str(tmp_path))


def test_factory_not_callable(place: Any, tmp_path: Path):
    name = place()
    with pytest.raises(AppLoadError, match="not callable, so it cannot be a factory"):
        load_app(f"{name}:number", factory=True, app_dir=str(tmp_path))


def test_file_app_never_replaces_an_imported_module(place: Any, tmp_path: Path):
    # A file named like a module already loaded (here the stdlib's json) is refused:
    # registering it under that name would swap the module for the whole process.
    import json

    place(name="json", folder="site")
    with pytest.raises(AppLoadError, match="already loaded"):
        load_app("site/json.py:app", app_dir=str(tmp_path))
    assert sys.modules["json"] is json


# -- ASGI or WSGI --------------------------------------------------------------------------


async def asgi_function(scope: Any, receive: Any, send: Any) -> None:
    pass


def wsgi_function(environ: Any, start_response: Any) -> Any:
    return []


def three_argument_function(scope: Any, receive: Any, send: Any) -> Any:
    return asgi_function(scope, receive, send)


def star_args(*args: Any) -> Any:
    return asgi_function(*args)


class AsyncCallable:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class SyncThreeArguments:
    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return asgi_function(scope, receive, send)


class WSGIObject:
    def __call__(self, environ: Any, start_response: Any) -> Any:
        return []


class ASGI2App:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        pass


class Methods:
    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        pass

    def wsgi(self, environ: Any, start_response: Any) -> Any:
        return []


@pytest.mark.parametrize(
    ("app", "interface"),
    [
        (asgi_function, "asgi"),
        (AsyncCallable(), "asgi"),
        (three_argument_function, "asgi"),
        (SyncThreeArguments(), "asgi"),
        (functools.partial(asgi_function), "asgi"),
        (Methods().asgi, "asgi"),
        (wsgi_function, "wsgi"),
        (WSGIObject(), "wsgi"),
        (Methods().wsgi, "wsgi"),
    ],
    ids=[
        "async-function",
        "async-__call__",
        "3-argument-function",
        "3-argument-__call__",
        "partial",
        "async-method",
        "2-argument-function",
        "2-argument-__call__",
        "2-argument-method",
    ],
)
def test_detect_interface(app: Any, interface: str):
    assert detect_interface(app) == interface


def test_star_args_cannot_be_told_apart():
    with pytest.raises(AppLoadError, match="pass --interface asgi or --interface wsgi"):
        detect_interface(star_args)


def test_asgi2_class_is_refused():
    with pytest.raises(AppLoadError, match="ASGI 2"):
        detect_interface(ASGI2App)


def test_flask_is_wsgi():
    flask = pytest.importorskip("flask")
    assert detect_interface(flask.Flask("rs_test")) == "wsgi"


def test_starlette_and_fastapi_are_asgi():
    from fastapi import FastAPI
    from starlette.applications import Starlette

    assert detect_interface(Starlette()) == "asgi"
    assert detect_interface(FastAPI()) == "asgi"


def test_demo_app_is_asgi():
    assert detect_interface(demo_app) == "asgi"
