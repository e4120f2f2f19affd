"""params.yaml: parsed into typed sections; every bad value fails with one clear line."""

import copy
import re

import pytest
import yaml

from sml.config import ParamsError, load_params, load_preset, parse_params
from tests.conftest import PARAMS, params_template

SHIPPED = params_template()


def test_the_params_file_parses():
    params = load_params(PARAMS)
    assert params.tokenizer.vocab_size == SHIPPED["tokenizer"]["vocab_size"]
    assert params.tokenizer.special_tokens == tuple(SHIPPED["tokenizer"]["special_tokens"])
    assert isinstance(params.data.val_fraction, float)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("tokenizer.vocab_size", 100, "tokenizer.vocab_size = 100: must be an integer >= 257"),
        ("tokenizer.vocab_size", "big", "tokenizer.vocab_size = 'big': must be an integer"),
        ("tokenizer.vocab_size", 4096.5, "tokenizer.vocab_size = 4096.5: must be an integer"),
        ("tokenizer.vocab_size", True, "tokenizer.vocab_size = True: must be an integer"),
        ("tokenizer.vocab_size", 257, "must be an integer >= 258 (256 bytes + 1 special"),
        ("tokenizer.pattern", "gpt3", "tokenizer.pattern = 'gpt3': must be one of 'gpt2', 'gpt4'"),
        ("tokenizer.special_tokens", "<|eot|>", "must be a list of strings"),
        ("tokenizer.special_tokens", ["a", "a"], "must be a list without duplicates"),
        ("tokenizer.special_tokens", ["x\ny"], "special_tokens[0] = 'x\\ny': must be a non-empty"),
        ("data.val_fraction", 0, "data.val_fraction = 0: must be a number > 0.0 and < 1.0"),
        ("data.val_fraction", 1.5, "data.val_fraction = 1.5: must be a number > 0.0 and < 1.0"),
        ("data.val_fraction", float("nan"), "data.val_fraction = nan: must be a number"),
        ("data.sha256", "abc", "data.sha256 = 'abc': must be a string: 64 lowercase hex digits"),
        ("data.special_in_text", "keep", "must be one of 'raise', 'allow', 'text'"),
        ("data.colour", "red", "data.colour is unknown (value 'red'): no such key; data has: source"),
        ("data.source", None, "data.source is missing: expected a string"),
    ],
)
def test_bad_values_fail_with_key_value_and_what_is_allowed(key, value, message):
    raw = copy.deepcopy(SHIPPED)
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
    raw = copy.deepcopy(SHIPPED)
    raw["data"]["val_fraction"] = "1e-1"  # PyYAML reads 1e-1 as a string
    assert parse_params(raw).data.val_fraction == 0.1


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "top level = None: must be a mapping"),
        ("data: [1, 2]\n", "data = [1, 2]: must be a mapping"),
        ("tokenizer: {\n", "not valid YAML"),
        ("optimizer: {}\n", "optimizer is unknown"),
    ],
)
def test_bad_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=re.escape(message)) as e:
        load_params(path)
    assert str(e.value).startswith(f"{path}: ")


def test_a_missing_file_says_where_to_run():
    with pytest.raises(ParamsError, match="file not found"):
        load_params("/nonexistent/params.yaml")


def test_every_shipped_preset_is_valid_and_loads():
    for name in SHIPPED.get("presets", {}):
        overrides = load_preset(PARAMS, name)
        assert overrides and all("." in key for key in overrides)
    assert "cpu" in SHIPPED["presets"]


@pytest.mark.parametrize(
    "preset, message",
    [
        ({"model.n_layer": 0}, "presets.bad: model.n_layer = 0: must be an integer >= 1"),
        ({"model.layers": 4}, "presets.bad.model.layers is not a known key"),
        ({"n_layer": 4}, "presets.bad.n_layer is not a known key"),
        ("fast", "presets.bad = 'fast': must be a mapping"),
    ],
)
def test_bad_presets_fail_like_bad_params(preset, message):
    raw = copy.deepcopy(SHIPPED)
    raw["presets"] = {"bad": preset}
    with pytest.raises(ParamsError) as e:
        parse_params(raw)
    assert message in str(e.value)


def test_an_unknown_preset_lists_the_known_ones(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    raw["presets"] = {"cpu": {"train.lr": 0.002}, "tiny": {"model.n_layer": 1}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="presets.huge is unknown: presets are cpu, tiny"):
        load_preset(path, "huge")


def test_load_params_applies_a_preset(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    raw["model"]["n_layer"] = 6
    raw["train"]["max_iters"] = 5000
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


def test_the_working_copy_with_its_own_presets_applied_loads():
    for name in SHIPPED.get("presets", {}):
        overrides = load_preset(PARAMS, name)
        applied = load_params(PARAMS, preset=name)
        for dotted, value in overrides.items():
            section, key = dotted.split(".")
            expected = tuple(value) if isinstance(value, list) else value
            assert getattr(getattr(applied, section), key) == expected, dotted
