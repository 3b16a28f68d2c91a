"""Load an `Aarq` app from a ``module:attribute`` path."""

from __future__ import annotations

import importlib
import os
import sys

from aioq.app import Aarq
from aioq.errors import ConfigError

__all__ = ["a_type", "load_app"]


def load_app(path: str) -> Aarq:
    """Import ``module:attribute`` from the current directory and check it is an `Aarq`."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(
            f"APP_PATH must look like module:attribute (e.g. myapp.tasks:app), got {path!r}"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError(
                f"cannot import {module_name!r}: no module named {e.name!r} in {cwd} or on the "
                "Python path (run the command from your project's directory)"
            ) from e
        raise ConfigError(f"error while importing {module_name!r}: {e}") from e
    except Exception as e:
        raise ConfigError(f"error while importing {module_name!r}: {type(e).__name__}: {e}") from e
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(app, Aarq):
        raise ConfigError(f"{path} is {a_type(app)}, not an aioq app (aioq.Aarq)")
    return app


def a_type(value: object) -> str:
    """The type of `value` with its article: ``a dict``, ``an int``."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
