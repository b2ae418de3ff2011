"""Run configuration: nested dataclasses loaded from YAML, overridden from the command line.

``load_config(TrainConfig, "configs/ferplus.yaml", ["optim.lr=0.01", "epochs=3"])`` returns a fully
resolved, frozen tree (sections listed under one key, ``tuple[Section, ...]``, are built too); ``config_to_dict`` turns it back into plain data to save beside the outputs.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass tree (tuples become lists, for YAML and JSON)."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from defaults, then the YAML file, then ``key.sub=value`` overrides (YAML-typed)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(f"load_config: {path} is not UTF-8 text ({error}); save the YAML file as UTF-8") from None
        except yaml.YAMLError as error:
            raise ValueError(f"load_config: {path} is not valid YAML ({' '.join(str(error).split())})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"load_config: {path} must hold a mapping at the top level, got {type(loaded).__name__}")
        data = loaded or {}
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator:
            raise ValueError(f"load_config: override {override!r} must look like key.subkey=value")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"load_config: override {override!r}: {part} is {node!r}, not a section with keys")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ValueError(f"load_config: override {override!r} is not a YAML value ({' '.join(str(error).split())})") from None
    try:
        return _build(cls, data, cls.__name__)
    except ValueError as error:
        if path is None:
            raise
        # Name the file the wrong field was read from (or overridden in).
        raise ValueError(f"load_config: {path}: {str(error).removeprefix('load_config: ')}") from None


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"load_config: {where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"load_config: unknown key(s) {unknown} in {where}; valid keys: {sorted(fields)}")
    required = [name for name, item in fields.items() if item.default is dataclasses.MISSING
                and item.default_factory is dataclasses.MISSING and item.init]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"load_config: missing key(s) {missing} in {where}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, f"{where}.{name}")
        else:
            values[name] = _coerce(value, hint, f"{where}.{name}")
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        origin = typing.get_origin(hint)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"load_config: {where} expects a list, got {value!r}")
        items = list(value)
        item_hint = typing.get_args(hint)[0] if typing.get_args(hint) else None
        if item_hint is not None and dataclasses.is_dataclass(item_hint):
            # Sections listed in YAML (``sources: [...]``) are built like any other, so a bad key names its item.
            items = [_build(item_hint, item, f"{where}[{index}]") for index, item in enumerate(items)]
        return tuple(items) if origin is tuple else items
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        # YAML 1.1 reads "1e30" (no dot) as a string; accept any number Python can parse.
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"load_config: {where} expects float, got {value!r}") from None
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise ValueError(f"load_config: {where} expects {hint.__name__}, got {value!r}")
    return value
