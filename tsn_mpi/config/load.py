"""TOML -> validated, frozen :class:`Config` (unknown keys, wrong types and bad values rejected)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tsn_mpi.config.schema import BY_PATH, KEYS, SECTIONS, Key
from tsn_mpi.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# keys that do not change the trained model (excluded from the model hash)
# model keys added after checkpoints existed: hashed only when set away from their default, so
# the checkpoints of earlier runs keep their model hash
LATE_MODEL_KEYS = frozenset({"plastic.wpee", "plastic.wpei", "plastic.wpie", "plastic.wpii",
                             "targets.threshold_overshoot"}
                            | {k.path for k in KEYS if k.section == "data"})
# keys that change how a run executes, not the model (checkpoints stay valid across them)
NON_MODEL_KEYS = frozenset({"run.backend", "run.h5_writes", "test.neurons", "gpu.fused",
                            "gpu.rls_kernel", "gpu.rls_unroll", "run.checkpoint_every",
                            "run.checkpoint_minutes", "run.checkpoint_keep",
                            "run.interconnect", "run.loop_threads",
                            "run.loop_spin_us"})


class Section:
    """Read-only attribute view of one config table."""

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config has no key {self._name}.{key}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Config is read-only")

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


class Config:
    """A validated configuration: ``cfg.network.n_cells`` etc.  Immutable."""

    def __init__(self, values: dict[str, dict[str, Any]], source: str = "<defaults>") -> None:
        self._sections = {s: Section(s, values[s]) for s in SECTIONS}
        self.source = source

    def __getattr__(self, name: str) -> Section:
        sections = self.__dict__.get("_sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(name)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {s: sec.as_dict() for s, sec in self._sections.items()}

    def replace(self, **changes: Any) -> Config:
        """A copy with ``section__key=value`` changes applied and validated."""
        data = self.as_dict()
        for dotted, value in changes.items():
            section, key = dotted.split("__", 1)
            data[section][key] = value
        return from_dict(data, self.source)

    def model_hash(self) -> str:
        """sha256 of every key that affects the model (identifies the model in checkpoints)."""
        flat = {
            f"{s}.{k}": v
            for s, sec in self.as_dict().items()
            for k, v in sec.items()
            if f"{s}.{k}" not in NON_MODEL_KEYS
            and not (f"{s}.{k}" in LATE_MODEL_KEYS and v == BY_PATH[f"{s}.{k}"].default)
        }
        return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]


def _check_value(key: Key, value: Any, where: str) -> Any:
    expected = key.type if isinstance(key.type, tuple) else (key.type,)
    if float in expected and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)
    if not ok:
        names = " or ".join(t.__name__ for t in expected)
        raise ConfigError(f"{where}: {key.path} = {value!r} should be of type {names}")
    if key.check is not None:
        problem = key.check(value)
        if problem:
            raise ConfigError(f"{where}: {key.path} = {value!r} {problem}")
    return value


def from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a nested dict (TOML tables) against the schema; missing keys take defaults."""
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for section, table in data.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section [{section}] (known: {', '.join(SECTIONS)})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for name, value in table.items():
            key = BY_PATH.get(f"{section}.{name}")
            if key is None:
                raise ConfigError(f"{source}: unknown key {section}.{name}" + _hint(section, name))
            values[section][name] = _check_value(key, value, source)
    for key in KEYS:
        values[key.section].setdefault(key.name, key.default)
    cfg = Config(values, source)
    from tsn_mpi.config.derived import check_consistency

    check_consistency(cfg)
    return cfg


def _hint(section: str, name: str) -> str:
    import difflib

    close = difflib.get_close_matches(f"{section}.{name}", list(BY_PATH), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return from_dict(data, str(path))


def default_config() -> Config:
    """The reference defaults (``configs/default.toml``)."""
    return from_dict({}, "<defaults>")


def dump_toml(cfg: Config | None = None, comments: bool = True) -> str:
    """Render a config as TOML, with each key's documentation as a comment."""
    values = (cfg or default_config()).as_dict()
    lines = [
        "# tsn-mpi configuration. Every key is documented in docs/configuration.md.",
        "# Derived quantities (K, L, weights, step counts) are computed, never set here.",
    ]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for key in KEYS:
            if key.section != section:
                continue
            if comments:
                unit = f" [{key.unit}]" if key.unit else ""
                lines.append(f"# {key.doc}{unit}")
            lines.append(f"{key.name} = {_toml_value(values[section][key.name])}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
