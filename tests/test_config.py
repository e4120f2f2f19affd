"""params.yaml: parsed into typed sections; every bad value fails with one clear line."""

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from sml.config import ParamsError, load_params, load_preset, parse_params
from tests.conftest import TEST_PARAMS, WORKING_PARAMS, params_template

TEMPLATE = params_template()


@pytest.mark.working_copy
def test_the_params_file_parses():
    """The user's params.yaml, whatever valid values `make quick` or their hand left in it."""
    written = yaml.safe_load(WORKING_PARAMS.read_text(encoding="utf-8"))
    params = load_params(WORKING_PARAMS)
    assert params.tokenizer.vocab_size == written["tokenizer"]["vocab_size"]
    assert params.tokenizer.special_tokens == tuple(written["tokenizer"]["special_tokens"])
    assert isinstance(params.data.val_fraction, float)


def test_the_suites_own_params_parse():
    """tests/params.yaml has every key (parse_params refuses a missing or unknown one)."""
    params = load_params(TEST_PARAMS)
    assert params.model.n_layer == 1 and params.train.device == "cpu" and list(TEMPLATE["presets"]) == ["tiny"]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("tokenizer.vocab_size", 100, "tokenizer.vocab_size = 100: must be an integer >= "),
        ("tokenizer.vocab_size", "big", "tokenizer.vocab_size = 'big': must be an integer"),
        ("tokenizer.vocab_size", 4096.5, "tokenizer.vocab_size = 4096.5: must be an integer"),
        ("tokenizer.vocab_size", True, "tokenizer.vocab_size = True: must be an integer"),
        ("tokenizer.vocab_size", 1 << 21, "tokenizer.vocab_size = 2097152: must be an integer: "),
        ("tokenizer.pattern", "gpt3", "tokenizer.pattern = 'gpt3': must be one of 'gpt2', 'gpt4'"),
        ("tokenizer.special_tokens", "<|eot|>", "must be a list of strings"),
        ("tokenizer.special_tokens", ["a", "a"], "must be a list without duplicates"),
        ("tokenizer.special_tokens", ["x\ny"], "special_tokens[0] = 'x\\ny': must be a non-empty"),
        ("data.val_fraction", 0, "data.val_fraction = 0: must be a number > 0.0 and < 1.0"),
        ("data.val_fraction", 1.5, "data.val_fraction = 1.5: must be a number > 0.0 and < 1.0"),
        ("data.val_fraction", float("nan"), "data.val_fraction = nan: must be a number"),
        ("data.val_fraction", "1e5", "data.val_fraction = 100000.0: must be a number"),
        ("data.val_fraction", "nan", "data.val_fraction = 'nan': must be a number"),
        ("data.val_fraction", {"a": 1}, "data.val_fraction = {'a': 1}: must be a number"),
        ("train.grad_clip", float("inf"), "train.grad_clip = inf: must be a finite number >= 0.0"),
        ("train.lr", [1e-3], "train.lr = [0.001]: must be a number"),
        ("plot.sentence", True, "plot.sentence = True: must be a string: a non-empty sentence (quote it: YAML"),
        ("plot.sentence", ["a"], "plot.sentence = ['a']: must be a string"),
        ("sample.prompts", [{"a": 1}], "sample.prompts[0] = {'a': 1}: must be a string"),
        ("model.bias", "yes", "model.bias = 'yes': must be true or false"),
        ("data.sources", [{"url": "x", "sha256": "abc", "format": "text"}],
         "data.sources[0].sha256 = 'abc': must be a string: 64 lowercase hex digits, or \"\" to download it"),
        ("data.sources", [{"url": "x", "sha256": "", "format": "csv"}],
         "data.sources[0].format = 'csv': must be one of 'text', 'jsonl'"),
        ("data.sources", [{"url": "x", "sha256": ""}], "data.sources[0].format is missing: expected one of"),
        ("data.sources", [], "data.sources = []: must be a list of at least one source"),
        ("data.sources", "x.txt", "data.sources = 'x.txt': must be a list of mappings with keys url, sha256, format"),
        ("data.separator", "<|end|>", "data.separator = '<|end|>': must be \"\" or one of tokenizer.special_tokens"),
        ("data.special_in_text", "keep", "must be one of 'raise', 'allow', 'text'"),
        ("data.colour", "red", "data.colour is unknown (value 'red'): no such key; data has: sources"),
        ("data.text_field", None, "data.text_field is missing: expected a string"),
    ],
)
def test_bad_values_fail_with_key_value_and_what_is_allowed(key, value, message):
    raw = copy.deepcopy(TEMPLATE)
    section, name = key.split(".")
    if value is None:
        del raw[section][name]
    else:
        raw[section][name] = value
    with pytest.raises(ParamsError) as e:
        parse_params(raw)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_numbers_written_without_a_dot_are_still_numbers():
    raw = copy.deepcopy(TEMPLATE)
    raw["data"]["val_fraction"] = "1e-1"  # PyYAML reads 1e-1 as a string
    assert parse_params(raw).data.val_fraction == 0.1


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "holds no settings (empty, or only comments): expected a mapping with keys data, tokenizer,"),
        ("# nothing yet\n\n", "holds no settings"),
        ("- data\n- train\n", "top level = ['data', 'train']: must be a mapping with keys data, tokenizer,"),
        ("42\n", "top level = 42: must be a mapping"),
        ("data: [1, 2]\n", "data = [1, 2]: must be a mapping"),
        ("tokenizer: {\n", "not valid YAML"),
        ("data:\n\tsource: x\n", "not valid YAML: while scanning for the next token found character '\\t'"),
        ("data: 2001-13-45\n", "not valid YAML: month must be in 1..12"),
        ("data: !!int -\n", "not valid YAML"),
        ("data: !!python/object:os.system x\n", "not valid YAML"),
        ("[" * 2000, "not valid YAML: maximum recursion depth exceeded"),  # PyYAML recurses per level
        ("data: 1\n---\ndata: 2\n", "not valid YAML: expected a single document"),
        ("optimizer: {}\n", "optimizer is unknown"),
        ('"a\\nb": 1\n', "a\\nb is unknown"),  # a line break in a key stays on the one line
    ],
)
def test_bad_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=re.escape(message)) as e:
        load_params(path)
    assert str(e.value).startswith(f"{path}: ")
    assert "\n" not in str(e.value)


def write_params(tmp_path, raw: dict) -> tuple[Path, list[str]]:
    """``raw`` written as params.yaml, sections in order; the path and the file's lines."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path, path.read_text(encoding="utf-8").splitlines()


def line_of(lines: list[str], text: str, after: str = "") -> int:
    """The 1-based number of the first line that is ``text``, after the first line ``after``."""
    start = lines.index(after) if after else 0
    return lines.index(text, start) + 1


def test_a_key_given_twice_names_both_lines(tmp_path):
    raw = copy.deepcopy(TEMPLATE)
    raw["train"]["lr"] = 1e-3
    path, lines = write_params(tmp_path, raw)
    n = line_of(lines, "  lr: 0.001", after="train:")
    lines.insert(n, "  lr: 5.0")  # as line n + 1: safe_load would keep this one, silently
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert str(e.value) == f"{path}: train.lr is given twice (lines {n} and {n + 1}): keep one"


def test_a_section_given_twice_names_both_lines(tmp_path):
    path, lines = write_params(tmp_path, copy.deepcopy(TEMPLATE))
    first = line_of(lines, "plot:")
    path.write_text("\n".join([*lines, "plot:", "  layer: 1"]) + "\n")
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert str(e.value) == f"{path}: plot is given twice (lines {first} and {len(lines) + 1}): keep one"


def test_a_preset_key_given_twice_names_both_lines(tmp_path):
    raw = copy.deepcopy(TEMPLATE)
    raw["presets"] = {"cpu": {"model.n_layer": 2, "train.lr": 0.002}}
    path, lines = write_params(tmp_path, raw)
    n = line_of(lines, "    model.n_layer: 2", after="presets:")
    lines.insert(n, "    model.n_layer: 4")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParamsError, match=re.escape(
            f"{path}: presets.cpu.model.n_layer is given twice (lines {n} and {n + 1}): keep one")):
        load_preset(path, "cpu")


def test_a_yaml_merge_may_still_be_overridden(tmp_path):
    raw = {k: v for k, v in copy.deepcopy(TEMPLATE).items() if k != "presets"}
    path, lines = write_params(tmp_path, raw)
    presets = ["presets:", "  small: &small", "    model.n_layer: 2",
               "  more:", "    <<: *small", "    model.n_layer: 3"]
    path.write_text("\n".join(lines + presets) + "\n")
    assert load_preset(path, "more") == {"model.n_layer": 3}


def test_a_missing_section_says_what_it_holds(tmp_path):
    raw = copy.deepcopy(TEMPLATE)
    del raw["plot"]
    path, _ = write_params(tmp_path, raw)
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert str(e.value) == f"{path}: plot is missing: expected a mapping with keys sentence, layer"


@pytest.mark.parametrize(
    "special, vocab_size, message",
    [
        ([], 256, "256: must be an integer >= 257 and <= 1048576 (256 bytes + 0 special tokens + at least 1 merge)"),
        (["<|eot|>"], 257, "257: must be an integer >= 258 and <= 1048576 (256 bytes + 1 special token + at least"
                           " 1 merge)"),
        (["<|eot|>"], 100, "100: must be an integer >= 258 and <= 1048576 (256 bytes + 1 special token + at least"
                           " 1 merge)"),
        (["<a>", "<b>"], -1, "-1: must be an integer >= 259 and <= 1048576 (256 bytes + 2 special tokens + at least"
                             " 1 merge)"),
        ([], 257, None),
        (["<|eot|>"], 258, None),
    ],
)
def test_the_vocab_floor_counts_the_special_tokens(special, vocab_size, message):
    """One floor, said the same way whatever the value: 256 bytes + the special tokens + 1 merge."""
    raw = copy.deepcopy(TEMPLATE)
    raw["tokenizer"].update(special_tokens=special, vocab_size=vocab_size)
    raw["data"]["separator"] = special[0] if special else ""
    if message is None:
        assert parse_params(raw).tokenizer.vocab_size == vocab_size
        return
    with pytest.raises(ParamsError) as e:
        parse_params(raw)
    assert str(e.value) == f"tokenizer.vocab_size = {message}"


def test_a_missing_vocab_size_states_the_same_rule():
    raw = copy.deepcopy(TEMPLATE)
    del raw["tokenizer"]["vocab_size"]
    with pytest.raises(ParamsError, match=re.escape(
            "tokenizer.vocab_size is missing: expected an integer: 256 bytes + 1 per special token + at least 1 merge,"
            " and <= 1048576")):
        parse_params(raw)


def test_yaml_booleans_and_numbers_as_pyyaml_reads_them(tmp_path):
    """YAML 1.1 (PyYAML, DVC): yes/on are true, no/off false; 1e-3 without a dot is still a number."""
    raw = copy.deepcopy(TEMPLATE)
    raw["train"].update(lr=0.1, min_lr=1e-4)
    path, lines = write_params(tmp_path, raw)
    text = "\n".join(lines) + "\n"
    for key, yaml_text in [("bias", "yes"), ("tie_weights", "off"), ("lr", "3e-3")]:  # each key is in one section
        text = re.sub(rf"(?m)^  {key}: .*$", f"  {key}: {yaml_text}", text)
    path.write_text(text)
    p = load_params(path)
    assert (p.model.bias, p.model.tie_weights, p.train.lr) == (True, False, 0.003)


@pytest.mark.parametrize(
    "text, message",
    [
        ("lr: .nan", "train.lr = nan: must be a number > 0.0"),
        ("lr: .inf", "train.lr = inf: must be a number > 0.0"),
        ("grad_clip: .inf", "train.grad_clip = inf: must be a finite number >= 0.0"),
        ("grad_clip: 0x" + "f" * 400, "train.grad_clip = 4446241647"),  # too big for a float: not a number
        ("seed: 0x" + "f" * 4000, "train.seed = (a huge number): must be an integer >= 0"),
        ("lr:", "train.lr = None: must be a number"),
        ("lr: {a: 1}", "train.lr = {'a': 1}: must be a number"),
        ("lr: 1_0e-3", "train.lr = '1_0e-3': must be a number"),
        ("device: [cpu]", "train.device = ['cpu']: must be one of 'auto', 'cpu'"),
    ],
)
def test_odd_yaml_values_fail_in_one_line(tmp_path, text, message):
    raw = copy.deepcopy(TEMPLATE)
    path, lines = write_params(tmp_path, raw)
    key = text.split(":")[0]
    n = next(i for i in range(lines.index("train:"), len(lines)) if lines[i].startswith(f"  {key}:"))
    lines[n] = "  " + text  # written as YAML text: .nan, 0x..., an empty value
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert str(e.value).startswith(f"{path}: {message}")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "data, message",
    [
        ("tokenizer:\n  pattern: caf\xe9\n".encode("latin-1"), "byte 25 (line 2) is not UTF-8: save the file as UTF-8"),
        ("data: 1\n".encode("utf-16"), "byte 0 (line 1) is not UTF-8: save the file as UTF-8"),
    ],
)
def test_a_file_that_is_not_utf8_says_where_and_what_to_do(tmp_path, data, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert str(e.value) == f"{path}: {message}"


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    """Some Windows editors start a UTF-8 file with one; it says nothing about the params."""
    path, _ = write_params(tmp_path, copy.deepcopy(TEMPLATE))
    without = load_params(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_params(path) == without


def test_a_directory_or_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(ParamsError) as e:
        load_params(tmp_path)
    assert str(e.value) == f"{tmp_path}: cannot be read: Is a directory"
    path, _ = write_params(tmp_path, copy.deepcopy(TEMPLATE))

    def refuse(self):  # chmod 000 does not stop root, who runs some CI
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert str(e.value) == f"{path}: cannot be read: Permission denied"


def test_a_missing_file_says_where_to_run():
    with pytest.raises(ParamsError, match="file not found"):
        load_params("/nonexistent/params.yaml")


@pytest.mark.working_copy
def test_every_shipped_preset_is_valid_and_loads():
    presets = yaml.safe_load(WORKING_PARAMS.read_text(encoding="utf-8"))["presets"]
    for name in presets:
        overrides = load_preset(WORKING_PARAMS, name)
        assert overrides and all("." in key for key in overrides)
    assert "cpu" in presets  # make quick's


@pytest.mark.parametrize(
    "preset, message",
    [
        ({"model.n_layer": 0}, "presets.bad: model.n_layer = 0: must be an integer >= 1"),
        ({"model.layers": 4}, "presets.bad.model.layers is not a known key"),
        ({"n_layer": 4}, "presets.bad.n_layer is not a known key"),
        ("fast", "presets.bad = 'fast': must be a mapping"),
        (None, "presets.bad = None: must be a mapping"),
        ({"model.n_layer": [4]}, "presets.bad: model.n_layer = [4]: must be an integer"),
    ],
)
def test_bad_presets_fail_like_bad_params(preset, message):
    raw = copy.deepcopy(TEMPLATE)
    raw["presets"] = {"bad": preset}
    with pytest.raises(ParamsError) as e:
        parse_params(raw)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "presets, message",
    [
        (3, "presets = 3: must be a mapping of preset names to 'section.key: value' overrides"),
        (["cpu"], "presets = ['cpu']: must be a mapping of preset names"),
        ("cpu", "presets = 'cpu': must be a mapping of preset names"),
        ({1: {"train.lr": 0.1}}, "presets.1 is not a name (value 1): preset names are strings: quote it"),
        ({True: {"train.lr": 0.1}}, "presets.True is not a name (value True): preset names are strings"),
    ],
)
def test_a_presets_section_of_the_wrong_shape_is_one_line(tmp_path, presets, message):
    raw = copy.deepcopy(TEMPLATE)
    raw["presets"] = presets
    path, _ = write_params(tmp_path, raw)
    for load in (load_params, lambda p: load_params(p, preset="cpu"), lambda p: load_preset(p, "cpu")):
        with pytest.raises(ParamsError) as e:
            load(path)
        assert str(e.value).startswith(f"{path}: {message}")


def test_an_empty_presets_section_means_no_presets(tmp_path):
    raw = copy.deepcopy(TEMPLATE)
    raw["presets"] = None  # `presets:` with every preset commented out
    path, _ = write_params(tmp_path, raw)
    assert load_params(path) == parse_params({k: v for k, v in raw.items() if k != "presets"})
    with pytest.raises(ParamsError, match="presets.cpu is unknown: presets are none"):
        load_preset(path, "cpu")


def test_an_unknown_preset_lists_the_known_ones(tmp_path):
    raw = copy.deepcopy(TEMPLATE)
    raw["presets"] = {"cpu": {"train.lr": 0.002}, "tiny": {"model.n_layer": 1}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="presets.huge is unknown: presets are cpu, tiny"):
        load_preset(path, "huge")


def test_load_params_applies_a_preset(tmp_path):
    raw = copy.deepcopy(TEMPLATE)
    raw["model"]["n_layer"] = 6
    raw["train"].update(max_iters=5000, warmup_iters=100)
    raw["presets"] = {"small": {"model.n_layer": 4, "train.max_iters": 680}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    small, base = load_params(path, preset="small"), load_params(path)
    assert (base.model.n_layer, base.train.max_iters) == (6, 5000)
    assert (small.model.n_layer, small.train.max_iters) == (4, 680)
    assert small.data == base.data and small.train.lr == base.train.lr  # untouched keys stay
    del raw["presets"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="presets.small is unknown: presets are none"):
        load_params(path, preset="small")


@pytest.mark.working_copy
def test_the_working_copy_with_its_own_presets_applied_loads():
    for name in yaml.safe_load(WORKING_PARAMS.read_text(encoding="utf-8"))["presets"]:
        overrides = load_preset(WORKING_PARAMS, name)
        applied = load_params(WORKING_PARAMS, preset=name)
        for dotted, value in overrides.items():
            section, key = dotted.split(".")
            got = getattr(getattr(applied, section), key)
            if isinstance(value, list):  # a list of strings, or of mappings (data.sources)
                got = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in got]
            assert got == value, dotted
