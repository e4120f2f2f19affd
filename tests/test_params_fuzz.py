"""Fuzz: no params file makes ``load_params`` do anything but return ``Params`` or raise a
one-line ``ParamsError`` that starts with the file and names the key at fault.

The mutations come from the schema in ``sml/config/sections.py`` (each section's dataclass fields, their
type hints, ``limits`` and ``Literal`` choices), not from a list written here, so a new
parameter is fuzzed the day it is added. Each example starts from the working copy's keys
(``params_template()``) and applies one to three mutations: at the level of the data (a
wrong type, a value at a bound or just past it, a value outside the choices, a key or a section
deleted or added, a bad preset), of the YAML text (a key or a section given twice, a tab, broken
syntax, a bad tag, a huge number, YAML 1.1 booleans), or of the bytes (Latin-1, UTF-16, and a
UTF-8 byte-order mark, which is accepted). A file may load only if no mutation had to break it;
an error names a mutated key unless the file as a whole is broken. A few such files also go
through a real stage command (``stages.train_bpe``, which fails on params before any work):
exit 1, one ``error:`` line, no traceback. ``TRIED`` counts the kinds tried, silently.
"""

import collections
import dataclasses
import math
import re
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sml.config import Params, ParamsError, load_params, load_preset, parse_params
from tests.conftest import params_template

TEMPLATE = params_template()
SECTIONS = typing.get_type_hints(Params)  # {"data": DataConfig, ...}
FIELDS = [(section, f, typing.get_type_hints(cls)[f.name])
          for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
CROSS_CHECKED = {section for section, cls in SECTIONS.items() if hasattr(cls, "__post_init__")}
PRESET = "fuzz"  # the preset the preset mutations write to, next to the file's own

# Values of every YAML type: for a wrong type, which may by chance be a valid value.
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
    st.sampled_from(["", "yes", "1e-3", "nan", "auto", "<|endoftext|>", "a\nb", 0, 1, -1, 2**63, 0.5, 1e300]),
    st.lists(st.one_of(st.integers(), st.text(max_size=6)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)
JUNK_NAME = st.from_regex(r"junk_[a-z0-9_]{0,8}", fullmatch=True)  # "junk_": never read as a bool or null
BROKEN = ["{", "[1, 2", "*nowhere", "!!int x", "!!bool maybe", "!!float x", "2001-13-45", "!!timestamp x",
          "!!python/object:os.system x", "&a &b x", "!!int -"]


@dataclasses.dataclass
class Mutation:
    kind: str
    target: str  # what it changes: "train.lr", "train", "presets.fuzz.train.lr", "bytes", "text"
    key: str | None  # the dotted key an error must name (None: the file as a whole is broken)
    must_fail: bool
    phrase: str = ""  # in the message when this is the only mutation
    data: Callable[[dict], None] | None = None
    text: Callable[[list[str]], None] | None = None
    encode: Callable[[str], bytes] | None = None


# ---- the mutations, each drawn from the schema -----------------------------------------------


def wrong_type(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))
    value = draw(ANY_VALUE)
    return Mutation("wrong type", f"{section}.{f.name}", f"{section}.{f.name}", False,
                    data=lambda raw: raw[section].__setitem__(f.name, value))


def invalid_values(f: dataclasses.Field, hint: Any) -> st.SearchStrategy | None:
    """Values just outside a field's ``limits`` or its pattern, or not among its choices; None
    for a field that has none (a bool, a list)."""
    meta = f.metadata
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        near = [str(c).upper() for c in choices] + [str(c).lower() for c in choices] + [1, 0, None, ""]
        return st.one_of(st.sampled_from(near), st.text(max_size=8)).filter(
            lambda v: not any(type(v) is type(c) and v == c for c in choices))
    if meta.get("pattern"):
        near = ["", "\n", " \n", "x" * 63, "X" * 64, "g" * 64, "\x00"]
        return st.sampled_from([v for v in near if re.fullmatch(meta["pattern"], v) is None])
    edges = []
    for bound, is_open, step in ((meta.get("lo"), meta.get("lo_open"), -1), (meta.get("hi"), meta.get("hi_open"), 1)):
        if bound is not None and hint is int:
            edges.append(int(bound) + step)
        elif bound is not None:
            edges.append(float(bound) if is_open else math.nextafter(bound, step * math.inf))
    return st.sampled_from(edges) if edges else None


BOUNDED = [(s, f, values) for s, f, hint in FIELDS if typing.get_origin(hint) is not Literal
           and (values := invalid_values(f, hint)) is not None]
CHOICES = [(s, f, invalid_values(f, hint)) for s, f, hint in FIELDS if typing.get_origin(hint) is Literal]


def valid_values(f: dataclasses.Field, hint: Any) -> list:
    """A field's edge values that its own check accepts (its closed bounds, its choices)."""
    meta = f.metadata
    if typing.get_origin(hint) is Literal:
        return list(typing.get_args(hint))
    edges = [meta.get(b) for b in ("lo", "hi") if meta.get(b) is not None and not meta.get(f"{b}_open")]
    return [int(e) if hint is int else float(e) for e in edges]


EDGES = [(s, f, values) for s, f, hint in FIELDS if (values := valid_values(f, hint))]


def edge_value(draw) -> Mutation:
    section, f, values = draw(st.sampled_from(EDGES))
    value = draw(st.sampled_from(values))  # valid alone; another key of the section may object (lr < min_lr)
    return Mutation("valid edge value", f"{section}.{f.name}", f"{section}.{f.name}", False,
                    data=lambda raw: raw[section].__setitem__(f.name, value))


def out_of_range(draw) -> Mutation:
    section, f, values = draw(st.sampled_from(BOUNDED))
    value = draw(values)
    return Mutation("out of range", f"{section}.{f.name}", f"{section}.{f.name}", True, " = ",
                    data=lambda raw: raw[section].__setitem__(f.name, value))


def not_a_choice(draw) -> Mutation:
    section, f, values = draw(st.sampled_from(CHOICES))
    value = draw(values)
    return Mutation("not a choice", f"{section}.{f.name}", f"{section}.{f.name}", True, "must be one of",
                    data=lambda raw: raw[section].__setitem__(f.name, value))


def delete_field(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))
    return Mutation("delete field", f"{section}.{f.name}", f"{section}.{f.name}", True, "is missing: expected",
                    data=lambda raw: raw[section].pop(f.name))


def unknown_key(draw) -> Mutation:
    section, name, value = draw(st.sampled_from(list(SECTIONS))), draw(JUNK_NAME), draw(ANY_VALUE)
    return Mutation("unknown key", f"{section}.{name}", f"{section}.{name}", True, "is unknown",
                    data=lambda raw: raw[section].__setitem__(name, value))


def delete_section(draw) -> Mutation:
    section = draw(st.sampled_from(list(SECTIONS)))
    return Mutation("delete section", section, section, True, "is missing: expected a mapping with keys",
                    data=lambda raw: raw.pop(section))


def junk_section(draw) -> Mutation:
    name, value = draw(JUNK_NAME), draw(ANY_VALUE)
    return Mutation("junk section", name, name, True, "is unknown", data=lambda raw: raw.__setitem__(name, value))


def duplicate_key(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))

    def repeat(lines):  # the key again, first in its section, so that both lines are there
        lines.insert(lines.index(f"{section}:") + 1, f"  {f.name}: 0")

    return Mutation("duplicate key", f"{section}.{f.name}", f"{section}.{f.name}", True, "is given twice (lines",
                    text=repeat)


def duplicate_section(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))
    return Mutation("duplicate section", section, section, True, "is given twice (lines",
                    text=lambda lines: lines.extend([f"{section}:", f"  {f.name}: 0"]))


def duplicate_preset_key(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))
    dotted = f"{section}.{f.name}"

    def repeat(lines):
        lines.insert(lines.index(f"  {PRESET}:", lines.index("presets:")) + 1, f"    {dotted}: 0")

    def add(raw):  # the key once, with the file's own value, as the data
        preset(raw)[dotted] = TEMPLATE[section][f.name]

    return Mutation("duplicate preset key", f"presets.{PRESET}.{dotted}", f"presets.{PRESET}.{dotted}", True,
                    "is given twice (lines", data=add, text=repeat)


def preset_out_of_range(draw) -> Mutation:
    section, f, values = draw(st.sampled_from(BOUNDED + CHOICES))
    dotted, value = f"{section}.{f.name}", draw(values)
    return Mutation("preset out of range", f"presets.{PRESET}.{dotted}", dotted, True, f"presets.{PRESET}: {dotted}",
                    data=lambda raw: preset(raw).__setitem__(dotted, value))


def preset_unknown_key(draw) -> Mutation:
    dotted = draw(st.one_of(JUNK_NAME, st.builds(lambda s, n: f"{s}.{n}", st.sampled_from(list(SECTIONS)), JUNK_NAME)))
    return Mutation("preset unknown key", f"presets.{PRESET}.{dotted}", f"presets.{PRESET}.{dotted}", True,
                    "is not a known key", data=lambda raw: preset(raw).__setitem__(dotted, 1))


def presets_wrong_shape(draw) -> Mutation:
    value = draw(st.one_of(ANY_VALUE.filter(lambda v: v is not None and not isinstance(v, dict)),
                           st.builds(lambda v: {"bad": v}, ANY_VALUE.filter(lambda v: not isinstance(v, dict))),
                           st.builds(lambda k: {k: {}}, st.sampled_from([1, True, None, 2.5]))))
    return Mutation("presets wrong shape", "presets", "presets", True, "presets",
                    data=lambda raw: raw.__setitem__("presets", value))


def tab(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))

    def indent_with_a_tab(lines):
        n = key_line(lines, section, f.name)
        lines[n] = "\t" + lines[n][2:]

    return Mutation("tab", f"{section}.{f.name}", None, True, "not valid YAML", text=indent_with_a_tab)


def broken_syntax(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))
    junk = draw(st.sampled_from(BROKEN))
    where = draw(st.sampled_from(["as a value", "at the end", "as a directive"]))
    if where == "as a value":
        return Mutation("broken syntax", f"{section}.{f.name}", None, True, "not valid YAML",
                        text=lambda lines: set_value(lines, section, f.name, junk))
    end = ["junk: {"] if where == "at the end" else []
    start = ["%YAML 2.0", "---"] if where == "as a directive" else []
    return Mutation("broken syntax", "text", None, True, "not valid YAML",
                    text=lambda lines: lines.__setitem__(slice(None), start + lines + end))


# Decimal digits past Python's 4300 are not read (not valid YAML); hex or base 60 make a huge int.
HUGE = {"1" * 5000: False, "0x" + "f" * 4000: True, "0x" + "f" * 300: True, ":".join(["1"] * 3000): True}


def huge_number(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))
    text = draw(st.sampled_from(list(HUGE)))
    return Mutation("huge number", f"{section}.{f.name}", f"{section}.{f.name}" if HUGE[text] else None, True,
                    text=lambda lines: set_value(lines, section, f.name, text))


def yaml11_boolean(draw) -> Mutation:
    section, f, _ = draw(st.sampled_from(FIELDS))
    word = draw(st.sampled_from(["yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y", "n"]))
    return Mutation("yaml 1.1 boolean", f"{section}.{f.name}", f"{section}.{f.name}", False,
                    text=lambda lines: set_value(lines, section, f.name, word))


def latin1(draw) -> Mutation:
    at = draw(st.integers(0, 1000))

    def insert_comment(lines):
        lines.insert(at % (len(lines) + 1), "# naïve café")

    return Mutation("latin-1", "bytes", None, True, "is not UTF-8: save the file as UTF-8", text=insert_comment,
                    encode=lambda text: text.encode("latin-1", errors="replace"))


def utf16(draw) -> Mutation:
    codec = draw(st.sampled_from(["utf-16", "utf-16-be", "utf-16-le"]))
    return Mutation("utf-16", "bytes", None, True, encode=lambda text: text.encode(codec))


def utf8_bom(draw) -> Mutation:
    return Mutation("utf-8 bom (accepted)", "bom", None, False)  # written by params_files: it goes on any bytes


MUTATIONS = [wrong_type, edge_value, out_of_range, not_a_choice, delete_field, unknown_key, delete_section,
             junk_section, duplicate_key, duplicate_section, duplicate_preset_key, preset_out_of_range,
             preset_unknown_key, presets_wrong_shape, tab, broken_syntax, huge_number, yaml11_boolean,
             latin1, utf16, utf8_bom]


# ---- helpers ----------------------------------------------------------------------------------


def preset(raw: dict) -> dict:
    """The fuzz preset's overrides, created on first use."""
    return raw.setdefault("presets", {}).setdefault(PRESET, {})


def key_line(lines: list[str], section: str, name: str) -> int:
    """The index of the line ``  name: ...`` of ``section`` in the YAML text."""
    start = lines.index(f"{section}:") + 1
    return next(i for i in range(start, len(lines)) if re.match(rf"  {re.escape(name)}:( |$)", lines[i]))


def set_value(lines: list[str], section: str, name: str, text: str) -> None:
    """Write ``text`` as the YAML of key ``section.name``, replacing its value's lines."""
    n = key_line(lines, section, name)
    end = n + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(("   ", "  - "))):
        end += 1  # the value's own lines: list items, and the rest of a multi-line string
    lines[n:end] = [f"  {name}: {text}"]


def conflicts(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def names(message: str, key: str) -> bool:
    """Whether an error names ``key``, or a key its section checks it against (min_lr <= lr...)."""
    section = key.removeprefix(f"presets.{PRESET}.").split(".")[0]
    return key in message or (section in CROSS_CHECKED and f"{section}." in message)


@st.composite
def params_files(draw) -> tuple[list[Mutation], Callable[[Path], None]]:
    """One to three mutations that do not overlap, and a function writing the mutated file."""
    chosen: list[Mutation] = []
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):  # one alone half the time: its exact message
        make = draw(st.sampled_from(MUTATIONS))
        m = make(draw)
        if not any(conflicts(m.target, c.target) for c in chosen):
            chosen.append(m)

    def write(path: Path) -> None:
        raw = {section: dict(keys) if isinstance(keys, dict) else keys for section, keys in TEMPLATE.items()}
        if isinstance(raw.get("presets"), dict):
            raw["presets"] = {name: dict(p) if isinstance(p, dict) else p for name, p in raw["presets"].items()}
        for m in chosen:
            if m.data:
                m.data(raw)
        lines = yaml.safe_dump(raw, sort_keys=False, width=math.inf, allow_unicode=True).splitlines()
        for m in sorted(chosen, key=lambda m: m.key is None):  # breakage last: it may move lines
            if m.text:
                m.text(lines)
        text = "\n".join(lines) + "\n"
        encoded = [m.encode for m in chosen if m.encode and m.target == "bytes"]
        data = encoded[0](text) if encoded else text.encode("utf-8")
        if any(m.target == "bom" for m in chosen):
            data = b"\xef\xbb\xbf" + data
        path.write_bytes(data)

    return chosen, write


# ---- the tests --------------------------------------------------------------------------------

TRIED: collections.Counter = collections.Counter()  # kind -> examples; read by whoever wants the figures


def test_no_params_file_makes_anything_but_a_one_line_params_error(tmp_path):
    path = tmp_path / "params.yaml"
    TRIED.clear()

    # 200: each kind at least 4 times (150 left a kind out); the last assert says when a new kind needs more.
    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(params_files(), st.sampled_from([None, *TEMPLATE["presets"], PRESET]))
    def check(case, preset_name):
        mutations, write = case
        write(path)
        TRIED.update(m.kind for m in mutations)
        try:
            load_params(path)
        except ParamsError as e:
            message = one_line(e, path)
            TRIED["outcome: ParamsError"] += 1
            keyed = [m.key for m in mutations if m.key]
            if len(keyed) == len(mutations):  # no file-level breakage: the error names a mutated key
                assert any(names(message, key) for key in keyed), (message, keyed)
            if len(mutations) == 1 and mutations[0].phrase:
                assert mutations[0].phrase in message, (message, mutations[0].kind)
        else:
            TRIED["outcome: valid"] += 1
            assert not any(m.must_fail for m in mutations), [m.kind for m in mutations]
        if preset_name:  # the other ways in: a result, or one line (an unknown preset's name, say)
            TRIED[f"outcome: also through preset {preset_name!r}"] += 1
            for load in (load_preset, lambda p, name: load_params(p, preset=name)):
                try:
                    load(path, preset_name)
                except ParamsError as e:
                    one_line(e, path)

    check()
    assert len([k for k in TRIED if not k.startswith("outcome")]) == len(MUTATIONS), TRIED  # every kind ran


YAML_DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8), inner, max_size=3),
    max_leaves=12)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(YAML_DATA, st.sampled_from([None, "presets", *SECTIONS]))
def test_parse_params_of_any_yaml_data_gives_params_or_a_one_line_error(data, where):
    """Whatever YAML can hold, as the whole file or as one section: the same rule, without a file."""
    raw = data if where is None else {**TEMPLATE, where: data}
    try:
        parse_params(raw)
    except ParamsError as e:
        assert "\n" not in str(e) and "\r" not in str(e), str(e)
        assert where is None or where in str(e), (str(e), where)


def one_line(e: ParamsError, path: Path) -> str:
    message = str(e)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{path}: "), message
    return message


@pytest.mark.e2e
def test_a_stage_command_prints_one_error_line_and_exits_1(tmp_path):
    path = tmp_path / "params.yaml"

    @settings(max_examples=5, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(params_files())
    def check(case):
        mutations, write = case
        assume(any(m.must_fail for m in mutations))
        write(path)
        done = subprocess.run([sys.executable, "-m", "stages.train_bpe", "--params", str(path),
                               "--corpus", str(tmp_path / "none.txt"), "--out", str(tmp_path / "tok")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), done.stderr

    check()
