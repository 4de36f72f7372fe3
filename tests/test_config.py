"""The training config: recipes, YAML files, overrides and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import (
    RECIPES,
    TrainConfig,
    apply,
    dump_yaml,
    load_config,
    parse_set,
    read_yaml,
    recipe,
    valid_keys,
)
from pipeline.core.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"


def test_seed_recipe_is_the_seeds_settings():
    seed = recipe("seed")
    assert (seed.batch_size, seed.lr, seed.epochs, seed.schedule, seed.optimizer) == (32, 1e-3, 10, "none", "adam")
    assert seed.label_smoothing == 0.0 and seed.normalize == "auto" and seed.grayscale and seed.image_size == 32


def test_default_recipe_honours_the_seed_with_a_schedule():
    default = recipe("default")
    assert default.optimizer == "adam" and default.schedule == "onecycle" and default.batch_size > 32
    assert default == TrainConfig()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_config_files_spell_out_the_recipes(name):
    # configs/train/<name>.yaml and --recipe <name> must never drift apart
    data = read_yaml(CONFIGS / f"{name}.yaml")
    assert sorted(data) == sorted(valid_keys())
    assert load_config(config_file=CONFIGS / f"{name}.yaml") == recipe(name)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_spells_out_every_key_and_loads(path):
    # the recipes beside the named ones (wide, fast) are read the same way: one commented line per key
    assert sorted(read_yaml(path)) == sorted(valid_keys())
    config = load_config(config_file=path)
    if config.augment:
        assert (CONFIGS.parents[1] / config.augment).is_file()  # relative to the project root


def test_auto_epochs_scale_with_dataset_size():
    c = TrainConfig()
    assert c.resolved_epochs(60_000) == 3  # 150k samples / 60k, rounded up
    assert c.resolved_epochs(3_600) == 42  # the embedded subset's train split
    assert c.resolved_epochs(10**7) == c.min_epochs
    assert TrainConfig(epochs=5).resolved_epochs(10) == 5


def test_precedence_recipe_file_options_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 16\nlr: 0.01\nepochs: 4\n")
    c = load_config(recipe_name="seed", config_file=path, options={"lr": 0.02, "epochs": None},
                    sets={"epochs": 7})
    assert (c.batch_size, c.lr, c.epochs, c.schedule) == (16, 0.02, 7, "none")


def test_unknown_key_lists_the_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 16\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(config_file=path)
    text = str(err.value)
    assert str(path) in text and "learning_rate" in text and "batch_size" in text and "val_split" in text
    assert "\n" not in text


@pytest.mark.parametrize("text,where", [
    ("batch_size: [1, 2\n", ":2"),      # unclosed flow sequence: reported with a line number
    ("epochs: 3\n  lr: 0.1\n", ":2"),   # bad indentation
    ("- 1\n- 2\n", "mapping"),          # a list, not a mapping of keys
])
def test_bad_yaml_is_one_line_naming_the_file(tmp_path, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(config_file=path)
    assert str(path) in str(err.value) and where in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(config_file=tmp_path / "nope.yaml")


@pytest.mark.parametrize("key,value,expected", [
    ("lr", "1e-3", 1e-3),          # YAML reads 1e-3 as a string; numbers are converted
    ("epochs", "12", 12),
    ("epochs", None, None),        # null = auto epochs
    ("val_split", "null", None),
    ("grayscale", "no", False),
    ("batch_size", 8.0, 8),        # an integral float is accepted for an integer
])
def test_values_are_coerced(key, value, expected):
    assert getattr(apply(TrainConfig(), {key: value}, "test"), key) == expected


@pytest.mark.parametrize("key,value", [
    ("batch_size", 0),             # must be positive
    ("batch_size", 2.5),           # not an integer
    ("lr", -1),                    # must be positive
    ("lr", "fast"),                # not a number
    ("schedule", "cosine"),        # not a known schedule
    ("normalize", "imagenet"),     # not a known rule
    ("warmup", 1.5),               # a fraction
    ("device", "tpu"),             # not a device we drive
    ("val_split", "holdout"),      # not a split
    ("grayscale", "maybe"),        # not a boolean
    ("batch_size", True),          # a boolean is not an integer
])
def test_bad_values_are_config_errors(key, value):
    with pytest.raises(ConfigError) as err:
        apply(TrainConfig(), {key: value}, "--set")
    assert key in str(err.value) and "--set" in str(err.value)


def test_parse_set():
    assert parse_set(["lr=0.01", "val_split=null", "variant=wide", "batch-size=16"]) == {
        "lr": 0.01, "val_split": None, "variant": "wide", "batch-size": 16}
    assert apply(TrainConfig(), parse_set(["batch-size=16"]), "--set").batch_size == 16
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["lr"])


def test_dump_round_trips(tmp_path):
    c = load_config(recipe_name="seed", sets={"val_split": None, "seed": 3})
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(c))
    assert load_config(config_file=path) == c


def test_unknown_recipe():
    with pytest.raises(ConfigError, match="default, seed"):
        recipe("fastest")
