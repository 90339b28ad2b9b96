"""Find the app named on the command line and tell which contract it speaks.

APP is `module:attr`, `module:attr()` (a factory, as is `--factory`), or
`path/to/file.py:attr`; `attr` may be dotted (`module:obj.app`). No APP means the built-in
demo app. Every failure is an `AppLoadError` whose message is one line naming the fix.

Interface detection (`--interface auto`), in order:
1. a coroutine function, or an object whose `__call__` is one: ASGI 3;
2. otherwise the callable's positional parameters (for an object, those of `__call__`):
   three is ASGI 3 (a callable returning an awaitable), two is WSGI
   (`environ, start_response`), one is an ASGI 2 class, which is refused;
3. anything else (`*args` wrappers, say) cannot be told apart: pass `--interface`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rootserve.config import Config

__all__ = ["AppLoadError", "detect_interface", "dress_app", "load_app", "load_configured_app"]

DEMO_APP = "rootserve.demo.app:app"


class AppLoadError(Exception):
    """The app could not be found, imported or built; the message says what to do."""


def load_app(spec: str | None, *, factory: bool = False, app_dir: str = ".") -> Any:
    """Import and return the app object named by `spec`."""
    if spec is None:
        spec = DEMO_APP
    module_part, sep, attr_part = spec.partition(":")
    if not sep or not module_part or not attr_part:
        raise AppLoadError(
            f"APP {spec!r} must be 'module:attribute' or 'path/to/file.py:attribute'"
            " (for example 'main:app')"
        )
    call = factory
    if attr_part.endswith("()"):
        attr_part, call = attr_part[:-2], True
    folder = str(Path(app_dir).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if module_part.endswith(".py"):
        module = _import_file(Path(app_dir) / module_part, spec)
    else:
        module = _import_module(module_part)
    obj: Any = module
    for name in attr_part.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            found = ", ".join(n for n in dir(module) if not n.startswith("_"))[:200]
            raise AppLoadError(
                f"module {module_part!r} has no attribute {attr_part!r}"
                f" (it has: {found or 'nothing public'})"
            ) from None
    if call:
        if not callable(obj):
            raise AppLoadError(f"{spec!r} is not callable, so it cannot be a factory")
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(
                f"calling the factory {attr_part!r} raised {_describe(exc)}"
            ) from None
    if not callable(obj):
        raise AppLoadError(f"{spec!r} is a {type(obj).__name__}, not a callable app")
    return obj


def _describe(exc: BaseException) -> str:
    """The error, and where in the app's code it was raised. A SyntaxError says where
    itself (file and line); its traceback ends in the import machinery, not in the app."""
    where = ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "<frozen " not in f.filename]
    if frames and not isinstance(exc, SyntaxError):
        last = frames[-1]
        where = f" at {last.filename}, line {last.lineno}"
    return f"{type(exc).__name__}: {exc}{where}"


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise AppLoadError(
                f"cannot import {name!r}: {exc} (run from the project folder or pass --app-dir)"
            ) from None
        raise AppLoadError(
            f"cannot import {name!r}: {exc} (install it in this environment)"
        ) from None
    except Exception as exc:
        raise AppLoadError(f"importing {name!r} raised {_describe(exc)}") from None


def _import_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise AppLoadError(f"cannot import {spec!r}: no file {str(path)!r}")
    name = path.stem
    if name in sys.modules:
        raise AppLoadError(
            f"cannot import {spec!r}: a module named {name!r} is already loaded; rename the"
            f" file, or pass '{name}:...' with --app-dir {str(path.parent)!r}"
        )
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise AppLoadError(f"cannot import {spec!r}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise AppLoadError(f"importing {str(path)!r} raised {_describe(exc)}") from None
    return module


def detect_interface(app: Any) -> str:
    """'asgi' or 'wsgi' by the rule in this module's docstring; AppLoadError otherwise."""
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = getattr(app, "__call__", None)  # noqa: B004 - we want the method itself
    plain_object = not (inspect.isfunction(app) or inspect.ismethod(app) or inspect.isclass(app))
    if plain_object and call is not None and inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        kinds = [p.kind for p in signature.parameters.values()]
        if inspect.Parameter.VAR_POSITIONAL not in kinds:
            positional = sum(
                kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for kind in kinds
            )
            if positional == 3:
                return "asgi"
            if positional == 2:
                return "wsgi"
            if positional == 1 and inspect.isclass(app):
                raise AppLoadError(
                    "the app looks like an ASGI 2 class (one argument, scope); rootserve "
                    "serves ASGI 3: wrap it with asgiref.compatibility.guarantee_single_callable"
                )
    raise AppLoadError(
        "cannot tell whether the app is ASGI or WSGI from its signature; "
        "pass --interface asgi or --interface wsgi"
    )


def load_configured_app(config: Config) -> tuple[Any, str]:
    """The app and its contract (`asgi` or `wsgi`), as the settings name them: what the
    command and every worker of a supervisor load. AppLoadError when it cannot be."""
    if config.reload:
        # Code edited while it runs: Python takes a cached .pyc for its source when the
        # source's size and its modification time, in whole seconds, match what the cache
        # recorded; an edit that keeps the size within the second of the last import would
        # be served as the old code. A --reload worker writes no cache, so it compiles
        # the source it finds (a fraction of a second, once per reload).
        sys.dont_write_bytecode = True
    app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
    kind = detect_interface(app) if config.interface == "auto" else config.interface
    return dress_app(app, kind, config), kind


def dress_app(
    app: Any, interface: str, config: Config, trace_sink: Callable[[str], None] | None = None
) -> Any:
    """`app` as these settings serve it: traced with --trace, and in its contract's
    validator with --strict (outside the trace, so that the trace shows what the app
    itself did, and the message that broke a rule before the rule). Off, the app is
    returned as it is: neither costs a request anything then."""
    # Imported only when on: the tracer and the validators are a tenth of the server's
    # import time (python -X importtime), which every start would pay for nothing.
    if config.tracing:
        from rootserve.observe.trace import Tracer

        app = Tracer.from_config(config, trace_sink).wrap(app, interface)
    if config.strict:
        from rootserve import validate

        app = validate.asgi(app) if interface == "asgi" else validate.wsgi(app)
    return app
