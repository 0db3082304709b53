"""Resolve plugin names: 'package.module:function' or 'path/to/file.py:function'."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tsn_mpi.errors import PluginError


def load_plugin(spec: str, key: str, base_dir: str | Path | None = None) -> Callable[..., Any]:
    """Return the callable named by ``spec``; ``key`` (e.g. 'targets.plugin') names the setting.

    Relative file paths are resolved against ``base_dir`` (the run directory).
    """
    target, _, func = spec.rpartition(":")
    if not target or not func:
        raise PluginError(
            f"{key} = {spec!r}: expected 'package.module:function' or 'file.py:function'"
        )
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise PluginError(f"{key} = {spec!r}: plugin file {path} not found")
        mod_name = f"tsn_mpi_plugin_{abs(hash(str(path.resolve())))}"
        sp = importlib.util.spec_from_file_location(mod_name, path)
        if sp is None or sp.loader is None:
            raise PluginError(f"{key} = {spec!r}: cannot load {path}")
        module = importlib.util.module_from_spec(sp)
        old_flag = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # never write __pycache__ into the user's run directory
        try:
            sp.loader.exec_module(module)
        except Exception as exc:
            raise PluginError(f"{key} = {spec!r}: importing {path} failed: {exc}") from exc
        finally:
            sys.dont_write_bytecode = old_flag
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise PluginError(
                f"{key} = {spec!r}: cannot import module {target!r} ({exc})"
            ) from None
    fn = getattr(module, func, None)
    if fn is None or not callable(fn):
        raise PluginError(f"{key} = {spec!r}: module {target!r} has no function {func!r}")
    return fn
