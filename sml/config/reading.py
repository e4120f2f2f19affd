"""Reading ``params.yaml``: the file, its presets, and every value checked against ``sections``.

A bad file or value fails here, in one line, before any stage does any work.
"""

import dataclasses
import functools
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from sml.config.sections import Params, ParamsError, _fail, _yaml  # noqa: F401


def load_params(path: str | Path = "params.yaml", preset: str | None = None) -> Params:
    """Read and validate ``params.yaml`` (with a preset's overrides applied, if named).

    Raises ``ParamsError`` with a one-line message.
    """
    raw = _read(path)
    params = _parse(path, raw)
    if preset is None:
        return params
    presets = raw.pop("presets", None)
    _preset_overrides(path, presets, preset)  # an unknown name fails here, in one line
    return _parse(path, apply_preset(raw, presets, preset))


def load_preset(path: str | Path, name: str) -> dict[str, Any]:
    """The overrides ``{"model.n_layer": 4, ...}`` of preset ``name`` in the params file, checked."""
    raw = _read(path)
    _parse(path, raw)  # validates the file and every preset
    return _preset_overrides(path, raw.get("presets"), name)


def _preset_overrides(path: str | Path, presets: Any, name: str) -> dict[str, Any]:
    presets = presets or {}  # already checked by parse_params: a mapping of names to mappings
    if name not in presets:
        raise ParamsError(f"{path}: presets.{name} is unknown: presets are {', '.join(presets) or 'none'}")
    return dict(presets[name])


def _read(path: str | Path) -> Any:
    """The params file as YAML data; every way of not being readable YAML fails in one line."""
    import yaml  # imported here so that importing sml.config stays cheap

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the repository root)") from None
    except OSError as e:  # a directory, no permission...
        raise ParamsError(f"{path}: cannot be read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")  # "-sig": a leading byte-order mark (some Windows editors) is fine
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ParamsError(f"{path}: byte {e.start} (line {line}) is not UTF-8: save the file as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_unique_key_loader())
    except ParamsError as e:  # a key given twice
        raise ParamsError(f"{path}: {e}") from None
    except Exception as e:  # PyYAML lets some bad text out as other errors: 2001-13-45 (ValueError),
        # !!bool maybe (KeyError), !!int - (IndexError), thousands of nested [ (RecursionError)...
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if raw is None:
        raise ParamsError(f"{path}: holds no settings (empty, or only comments): expected {_describe(Params, {})}")
    return raw


@functools.cache
def _unique_key_loader() -> type:
    """PyYAML's SafeLoader, except that a key given twice in one mapping is an error (not, as
    in ``yaml.safe_load``, the last one silently kept: a value the file's reader may not see)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self.dotted = {}  # node -> the dotted key it is the value of, and a dot: "train."

        def construct_mapping(self, node, deep=False):
            lines = {}  # key -> the line it is first given on
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # a list as a key fails in PyYAML; "<<" merges may be overridden
                key, line = self.dotted.get(node, "") + key_node.value, key_node.start_mark.line + 1
                if key in lines:
                    raise ParamsError(f"{key} is given twice (lines {lines[key]} and {line}): keep one")
                lines[key] = line
                self.dotted[value_node] = key + "."
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def with_options(section: Any, name: str, **options: Any) -> Any:
    """The config of section ``name`` with the command line's ``options`` in place (None: not
    given), each checked as params.yaml's value would be: a bad one fails in one line.

    >>> from sml.config.sections import PlotConfig
    >>> with_options(PlotConfig("ROMEO:", 0), "plot", layer=1).layer
    1
    """
    raw = json.loads(json.dumps(dataclasses.asdict(section)))  # tuples as YAML gives them: lists
    for key, value in options.items():
        if value is None:
            continue
        try:
            _build(type(section), raw | {key: value}, prefix=f"{name}.")
        except ParamsError as e:
            raise ParamsError(f"--{key.replace('_', '-')}: {e}") from None
        raw[key] = value
    return _build(type(section), raw, prefix=f"{name}.")


def _parse(path: str | Path, raw: Any) -> Params:
    try:
        return parse_params(raw)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None


def parse_params(raw: Any) -> Params:
    """Build ``Params`` from already-loaded YAML data (a dict of sections).

    The optional ``presets`` section is checked too: each preset applied to the rest of
    the file must give valid params (see ``apply_preset``).
    """
    presets = None
    if isinstance(raw, dict) and "presets" in raw:
        raw = dict(raw)
        presets = raw.pop("presets")
    params = _build(Params, raw, prefix="")
    presets = {} if presets is None else presets  # also `presets:` with every preset commented out
    if not isinstance(presets, dict):
        _fail("presets", presets, "a mapping of preset names to 'section.key: value' overrides")
    for name in presets:
        if not isinstance(name, str):
            _fail(f"presets.{name}", name, "preset names are strings: quote it", verb="is not a name")
        try:
            _build(Params, apply_preset(raw, presets, name), prefix="")
        except ParamsError as e:
            raise ParamsError(str(e) if str(e).startswith("presets.") else f"presets.{name}: {e}") from None
    return params


def apply_preset(raw: dict, presets: Any, name: str) -> dict:
    """A copy of ``raw`` with preset ``name``'s dotted keys set: ``{"train.lr": 1e-3}``.

    >>> apply_preset({"train": {"lr": 0.1, "seed": 1}}, {"fast": {"train.lr": 0.5}}, "fast")
    {'train': {'lr': 0.5, 'seed': 1}}
    """
    if not isinstance(presets, dict) or not isinstance(presets.get(name), dict):
        _fail(f"presets.{name}", presets if not isinstance(presets, dict) else presets.get(name),
              "a mapping of 'section.key: value' overrides")
    out = {section: dict(keys) if isinstance(keys, dict) else keys for section, keys in raw.items()}
    for dotted, value in presets[name].items():
        section, _, key = str(dotted).partition(".")
        if not key or not isinstance(out.get(section), dict) or key not in out[section]:
            _fail(f"presets.{name}.{dotted}", value, "an override of an existing key, as 'section.key'",
                  verb="is not a known key")
        out[section][key] = value
    return out


# ---- the checking machinery ---------------------------------------------------------------


def _build(cls: type, raw: Any, prefix: str):
    """Check ``raw`` against dataclass ``cls`` key by key, then construct it."""
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        _fail(where, raw, _describe(cls, {}))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            _fail(f"{prefix}{key}", raw[key], f"no such key; {where} has: {', '.join(fields)}",
                  verb="is unknown")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            raise ParamsError(f"{key} is missing: expected {_describe(hints[name], f.metadata)}")
        values[name] = _check(key, raw[name], hints[name], f.metadata)
    return cls(**values)


def _check(key: str, value: Any, hint: Any, meta: dict) -> Any:
    """Return ``value`` converted to ``hint`` (int, float, str, Literal, tuple, dataclass)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    if origin is Literal:  # compare types too: True must not pass for 1, nor 1 for True
        if not any(type(value) is type(a) and value == a for a in typing.get_args(hint)):
            _fail(key, value, _describe(hint, meta))
        return value
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list):
            _fail(key, value, _describe(hint, meta))
        return tuple(_check(f"{key}[{i}]", v, item, {}) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{key}: optional params are not supported; give every key a value")
    converted = _as_float(value) if hint is float else value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(converted, float) and math.isfinite(converted),
        str: isinstance(value, str),
    }[hint]
    if not ok or not _in_limits(converted, meta):
        note = " (quote it: YAML reads yes/no/on/off as true/false)" if hint is str and isinstance(value, bool) else ""
        _fail(key, converted if isinstance(value, str) else value, _describe(hint, meta) + note)
    return converted


_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")  # 1e-3, -2.5E4, .5


def _as_float(value: Any) -> Any:
    """``value`` as a float if it is a number or decimal text (PyYAML reads 1e-3 as a string),
    else unchanged, to fail the check: True, an int too big for a float, 'nan', None..."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1e308:
        return float(value)
    return value


def _in_limits(value: Any, meta: dict) -> bool:
    if not meta:
        return True
    if meta["pattern"] is not None:
        return re.fullmatch(meta["pattern"], value) is not None
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and (value <= lo if meta["lo_open"] else value < lo):
        return False
    return hi is None or (value < hi if meta["hi_open"] else value <= hi)


def _describe(hint: Any, meta: dict) -> str:
    """What a key accepts, in words: 'a number > 0 and < 1', 'one of 'gpt2', 'gpt4''."""
    if dataclasses.is_dataclass(hint):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(hint))}"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(_yaml(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return f"a list of mappings with keys {', '.join(f.name for f in dataclasses.fields(item))}" \
            if dataclasses.is_dataclass(item) else "a list of strings"
    noun = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]
    if hint is float and meta.get("hi") is None:
        noun = "a finite number"  # with an upper bound, finite goes without saying
    if meta.get("hint"):
        return f"{noun}: {meta['hint']}"
    bounds = []
    if meta.get("lo") is not None:
        bounds.append(f"{'>' if meta['lo_open'] else '>='} {meta['lo']}")
    if meta.get("hi") is not None:
        bounds.append(f"{'<' if meta['hi_open'] else '<='} {meta['hi']}")
    return noun + (" " + " and ".join(bounds) if bounds else "")


