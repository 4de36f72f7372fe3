"""The training configuration: one dataclass, two named recipes, YAML files, command-line overrides.

Resolution order (later wins): the recipe (`default` or `seed`), a YAML file (`--config`), the named
command-line options (`--epochs`, `--lr`, ...), then `--set KEY=VALUE`. The resolved config is
saved in the run folder as `config.yaml`, so a run can be reproduced with `--config RUN/config.yaml`.

YAML is read with `yaml.safe_load`. An unknown key or a value of the wrong type is a
`ConfigError` naming the file and key and listing the valid keys.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError

SCHEDULES = ("onecycle", "none")
NORMALIZE = ("auto", "mnist", "dataset")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class TrainConfig:
    """Everything that decides how NumberModel is trained. Defaults are the `default` recipe."""

    variant: str = "standard"  # NumberModel variant or `autoencoder`; `pipeline model summary --variant all` lists them
    groups: int | None = None  # groups of the `grouped` variant's second conv; null = its default (2)
    widths: str | None = None  # conv output channels, "W1,W2" (NumberModel), "W1,W2,W3" (autoencoder; wide, fast: 2 convs + fc); null = defaults
    epochs: int | None = None  # None = auto: enough passes to show the model `min_samples` samples
    min_samples: int = 150_000  # auto epochs: 50-60k MNIST gets 3 passes (about 99.0% on 10k held out), a 3.6k subset 42
    min_epochs: int = 3  # auto epochs never go below this: one-cycle needs room to warm up and anneal
    batch_size: int = 128  # on 2 cores throughput grows up to ~128: 10% faster than 96, as accurate at lr 7e-3
    lr: float = 7e-3  # peak of the one-cycle schedule; at batch 128, 6e-3..7e-3 pass 99.0% on MNIST in 3 epochs
    optimizer: str = "adam"  # the seed's optimizer; adamw and sgd (momentum 0.9) for experiments
    weight_decay: float = 0.0  # the seed used none; NumberModel is small enough not to need it
    schedule: str = "onecycle"  # onecycle | none (none = constant lr, as the seed)
    warmup: float = 0.15  # fraction of the one-cycle spent ramping up to `lr`; short, as runs are short
    seed: int = 0  # model init, shuffling and augmentation all derive from it
    grayscale: bool = True  # the seed converts every image to grayscale (1 input channel)
    image_size: int = 32  # NumberModel's input; images are resized once, when the tensor cache is built
    normalize: str = "auto"  # auto: MNIST's (0.1307, 0.3081) for 1-channel 28x28 data, else per-dataset
    val_split: str | None = "val"  # split evaluated each epoch; null trains without validation
    augment: str | None = None  # online augmentation recipe (YAML) applied per batch; null = none
    label_smoothing: float = 0.1  # the seed used plain cross-entropy (0); 0.1 takes 3 MNIST epochs past 99.0% on every seed
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int = 0  # 0 = one per idle core: busy cores make OpenMP threads wait for each other
    channels_last: bool = True  # max-pool and convolutions run about 1.4x faster in NHWC on CPU
    eval_batch_size: int = 1000  # evaluation has no gradients, so big batches are cheap
    log_images: int = 16  # images of the batch the model sees (after augmentation) shown in TensorBoard (0 = none)
    histogram_every: int = 1  # weight and gradient histograms in TensorBoard every N epochs (0 = never)
    log_graph: bool = True  # the model graph in TensorBoard (one traced forward pass)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_options(self) -> dict[str, Any]:
        """The options `build_model` gets: only those set, so each variant keeps its own defaults."""
        options: dict[str, Any] = {}
        if self.groups is not None:
            options["groups"] = self.groups
        if self.widths is not None:
            options["widths"] = parse_widths(self.widths, "widths")
        return options

    def resolved_epochs(self, n_train: int) -> int:
        """The number of epochs: `epochs` when set, else enough to show the model `min_samples` samples."""
        if self.epochs is not None:
            return self.epochs
        per_epoch = max(1, n_train)
        return max(self.min_epochs, -(-self.min_samples // per_epoch))


# The two named recipes, as overrides of the dataclass defaults. configs/train/<name>.yaml spell them out.
RECIPES: dict[str, dict[str, Any]] = {
    # Adam, label-smoothed cross-entropy and the seed's normalization, one-cycle: 99.0% on MNIST in 3 epochs.
    "default": {},
    # The seed's exact settings: batch 32, Adam at a constant 1e-3, plain cross-entropy, 10 epochs.
    "seed": {"epochs": 10, "batch_size": 32, "lr": 1e-3, "schedule": "none", "label_smoothing": 0.0},
}


def valid_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(TrainConfig)}


def parse_widths(text: str, where: str) -> tuple[int, ...]:
    """'8,16' -> (8, 16): comma-separated positive channel counts."""
    try:
        values = tuple(int(part) for part in str(text).replace(" ", "").split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ConfigError(f"{where}: expected comma-separated positive integers such as 8,16, got {text!r}",
                          fix="e.g. widths=12,32 (NumberModel) or widths=16,32,64 (autoencoder)")
    return values


def _coerce(key: str, value: Any, where: str) -> Any:
    """Check (and gently convert) one value against the field's type; errors name where it came from."""
    kind = _field_types()[key]
    if key == "widths" and isinstance(value, (list, tuple)):  # YAML `widths: [8, 16]`
        value = ",".join(str(v) for v in value)
    optional = "None" in kind
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: {key}: expected a value, got null", fix=f"give {key} a value or leave it out")
    if isinstance(value, str) and optional and value.strip().lower() in ("none", "null", "~", ""):
        return None

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: expected {expected}, got {value!r}", fix=f"set {key} to {expected}")

    if kind.startswith("int"):
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            out: Any = value
        elif isinstance(value, str):
            try:
                out = int(value.replace("_", ""))
            except ValueError:
                raise bad("an integer") from None
        elif isinstance(value, float) and value.is_integer():
            out = int(value)
        else:
            raise bad("an integer")
    elif kind.startswith("float"):
        if isinstance(value, bool):
            raise bad("a number")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
    elif kind.startswith("bool"):
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            out = value.lower() in ("true", "yes", "on", "1")
        else:
            raise bad("true or false")
    else:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad("a string")
        out = str(value)
    _check_range(key, out, where)
    return out


def _check_range(key: str, value: Any, where: str) -> None:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: expected {expected}, got {value!r}", fix=f"set {key} to {expected}")

    choices = {"schedule": SCHEDULES, "normalize": NORMALIZE, "optimizer": OPTIMIZERS}
    if key in choices and value not in choices[key]:
        raise fail(" | ".join(choices[key]))
    if key in ("epochs", "batch_size", "min_epochs", "min_samples", "eval_batch_size", "image_size") and value is not None:
        if value < 1:
            raise fail("a positive integer")
    if key == "groups" and value is not None and value < 1:
        raise fail("a positive integer")
    if key == "widths" and value is not None:
        parse_widths(value, f"{where}: widths")
    if key in ("threads", "log_images", "histogram_every") and value < 0:
        raise fail("an integer >= 0")
    if key == "lr" and not value > 0:
        raise fail("a positive number")
    if key in ("warmup", "label_smoothing") and not 0 <= value < 1:
        raise fail("a number in [0, 1)")
    if key == "weight_decay" and value < 0:
        raise fail("a number >= 0")
    if key == "device" and not (value in ("auto", "cpu", "cuda") or value.startswith("cuda:")):
        raise fail("auto | cpu | cuda | cuda:N")
    if key == "val_split" and value is not None and value not in ("train", "val", "test"):
        raise fail("val | test | null")


def apply(config: TrainConfig, overrides: dict[str, Any], where: str) -> TrainConfig:
    """A copy of `config` with `overrides` applied; an unknown key lists the valid ones."""
    keys = valid_keys()
    values = config.to_dict()
    for key, value in overrides.items():
        norm = str(key).replace("-", "_")
        if norm not in keys:
            raise ConfigError(
                f"{where}: unknown config key {key!r}",
                fix=f"use one of: {', '.join(keys)}",
            )
        values[norm] = _coerce(norm, value, where)
    return TrainConfig(**values)


def recipe(name: str) -> TrainConfig:
    """The named recipe ('default' or 'seed')."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}", fix=f"use one of: {', '.join(RECIPES)}")
    return apply(TrainConfig(), RECIPES[name], f"recipe {name}")


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A config file's mapping (`yaml.safe_load`); bad YAML names the file and line."""
    from pipeline.core.errors import DataError
    from pipeline.core.limits import read_yaml_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file", fix="check the path (recipes live in configs/train/)")
    try:  # safe types only, no aliases, a size cap (`pipeline.core.limits`)
        data = read_yaml_file(path, fix="fix the YAML syntax (aliases and anchors are not allowed)")
    except DataError as err:
        raise ConfigError(err.message, fix=err.fix) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}",
                          fix=f"write one `key: value` per line; valid keys: {', '.join(valid_keys())}")
    return data


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are parsed as YAML scalars (`--set val_split=null`)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE", fix="e.g. --set warmup=0.3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value
    return out


def load_config(
    *,
    recipe_name: str = "default",
    config_file: str | os.PathLike | None = None,
    options: dict[str, Any] | None = None,
    sets: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a config: recipe, then the YAML file, then named options, then `--set` pairs."""
    config = recipe(recipe_name)
    if config_file is not None:
        config = apply(config, read_yaml(config_file), str(config_file))
    if options:
        config = apply(config, {k: v for k, v in options.items() if v is not None}, "command line")
    if sets:
        config = apply(config, sets, "--set")
    return config


def dump_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML, keys in declaration order."""
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
