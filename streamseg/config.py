"""Configuration: YAML files loaded into typed dataclasses, validated field by field.

Every section is a dataclass owned by the package it configures; this module composes them and
turns YAML (plus ``--set a.b=value`` overrides) into them. An unknown key or a value of the wrong
type or range raises :class:`ConfigError` naming the dotted field.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streamseg.engine.config import EngineConfig
from streamseg.errors import ConfigError
from streamseg.model.config import ModelConfig, VocabularyConfig
from streamseg.predictor.config import PostprocessConfig
from streamseg.sources.config import SourceOptions
from streamseg.tracking.config import TrackerConfig
from streamseg.training.config import TrainConfig


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    vocabulary: VocabularyConfig = field(default_factory=VocabularyConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    source: SourceOptions = field(default_factory=SourceOptions)  # every source: pacing, timeouts, reconnects
    train: TrainConfig = field(default_factory=TrainConfig)
    # Default weights for this config; relative paths resolve against the config file's folder.
    checkpoint: str | None = None
    # Where the config came from (set by load_config, not read from YAML).
    source_path: str | None = field(default=None, metadata={"internal": True})


_INT_LIMIT = 2**63  # every integer field must fit a signed 64-bit C integer

# The shipped configs are package data (the checkout's top-level configs/ links here), so a name like
# ``cpu-mobilenet`` resolves from any folder after ``pip install .``; their relative checkpoint paths
# point at the package's weights/ beside them.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def packaged_configs() -> list[str]:
    """Names of the shipped configs (``cpu-mobilenet``, ``r50``, ...), usable wherever a path is."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A config path as given, or a shipped config's name (``cpu-mobilenet``) from any folder."""
    p = Path(path)
    if p.is_file() or p.suffix or len(p.parts) > 1:
        return p
    named = CONFIG_DIR / f"{p}.yaml"
    if named.is_file():
        return named
    close = difflib.get_close_matches(str(p), packaged_configs(), n=3)
    hint = f" (closest shipped configs: {', '.join(close)})" if close else \
        f" (shipped configs: {', '.join(packaged_configs())})"
    raise ConfigError(f"config file not found: {p}{hint}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping: YAML would silently keep the last,
    so a pasted or doubled block would override settings without a word."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:  # before merge keys (<<) are expanded: they may override
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise DuplicateKeyError(str(key), key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, mark) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.problem_mark = key, mark


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (a path or a shipped config's name; the defaults when None) and apply
    ``key.sub=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text (bad byte at offset {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read ({exc.strerror or exc})") from None
        try:
            loaded = yaml.load(text, Loader=_UniqueKeyLoader)
        except DuplicateKeyError as exc:
            raise ConfigError(f"config file {p} gives {exc.key!r} twice in one section "
                              f"(line {exc.problem_mark.line + 1})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise ConfigError(f"config file {p} is not valid YAML{where}") from None
        except RecursionError:
            raise ConfigError(f"config file {p} is nested too deeply") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data = loaded
    for item in overrides or []:
        _apply_override(data, item)
    cfg = from_dict(Config, data, prefix="")
    if path is not None:
        cfg.source_path = str(Path(path).resolve())
        if cfg.checkpoint and not Path(cfg.checkpoint).is_absolute():
            cfg.checkpoint = str((Path(path).resolve().parent / cfg.checkpoint).resolve())
    validate(cfg)
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data form of a config (for checkpoints and logs); omits internal fields."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if f.metadata.get("internal"):
            continue
        value = getattr(cfg, f.name)
        out[f.name] = config_to_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def validate(cfg: Any, prefix: str = "") -> None:
    """Run each section's own ``validate()`` (range checks) depth-first."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, f"{prefix}{f.name}.")
    check = getattr(cfg, "validate", None)
    if callable(check):
        try:
            check()
        except ConfigError as exc:
            raise ConfigError(f"config: {prefix}{exc}") from None


def _apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like section.field=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{item}': {part} is not a section")
    node[parts[-1]] = _parse_override_value(item, raw) if raw.strip() else None


def _parse_override_value(item: str, raw: str) -> Any:
    """One ``--set`` value as YAML (safe_load: tags such as !!python/object are refused, never run)."""
    try:
        return yaml.safe_load(raw)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"override '{item}': value uses an unsupported YAML tag ({exc.problem})") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"override '{item}': value is not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"override '{item}': value is nested too deeply") from None


def from_dict(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and value types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {prefix.rstrip('.') or 'top level'} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=3, cutoff=0.5)
            hint = f" (closest: {', '.join(prefix + c for c in close)})" if close else \
                f" (valid here: {', '.join(prefix + k for k in known)})"
            raise ConfigError(f"config: unknown key '{prefix}{key}'{hint}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(typing.cast(type, tp), value, name + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"config: {name} must not be null")
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config: {name} must be one of {allowed}, got {value!r}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):  # --set vocabulary.names=person,car
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config: {name} must be a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config: {name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config: {name} must be an integer, got {value!r}")
        if not -_INT_LIMIT <= value < _INT_LIMIT:  # C libraries (ZeroMQ, FFmpeg) take at most 64 bits
            raise ConfigError(f"config: {name} is out of range, got {value}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config: {name} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config: {name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"config: {name} has unsupported type {tp}")
