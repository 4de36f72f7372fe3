"""`pipeline label-issues DATASET --out DIR`: likely label errors, near-duplicates and outliers
(the work is in pipeline/labeling/issues.py)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option


@click.command("label-issues")
@click.argument("data", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Report folder (issues.json, issues.csv, issues.png, probs.npy, features.npy, folds.json).")
@click.option("--folds", type=click.IntRange(min=2), default=4, show_default=True,  # issues.DEFAULT_FOLDS
              help="Cross-validation folds: each sample is predicted by a model trained without it.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="Training config (YAML, keys as in configs/train/default.yaml); default: the default recipe.")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Epochs per fold (default: the folds together train on 5x the samples one `pipeline train` "
                   "of the whole dataset does; 5 epochs for 60,000 MNIST images in 4 folds).")
@click.option("--seed", type=int, help="Seed of the folds, model init and shuffling (default: the config's).")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0),
              help="Flag every sample whose label-quality score is below this, instead of cleanlab's "
                   "confident-learning filter.")
@click.option("--top", type=click.IntRange(min=1), help="Keep only the N most likely issues in the report.")
@click.option("--overwrite", is_flag=True,
              help="Replace a label-issues report of another dataset or other training parameters at --out "
                   "(one of the same is always updated, without training again).")
@max_pixels_option
def label_issues(data, out, folds, config_file, epochs, seed, threshold, top, overwrite) -> None:
    """Find samples whose label looks wrong, near-duplicates and outliers in DATASET.

    NumberModel is trained --folds times (the default recipe, the shared tensor cache), each time
    without one fold, so every sample is predicted by a model that never saw it. cleanlab's
    confident learning then estimates how many labels are wrong and flags that many samples with
    the lowest label-quality score (the out-of-sample probability of the given label: lower = more
    likely wrong), ranked by it; near-duplicates and outliers come from the model's
    penultimate-layer features.
    A detection dataset is checked through its object crops (written to DIR/crops): a box whose
    class looks wrong is a `box-label` issue with its object index.

    The probabilities are saved in DIR: running again over the same dataset with the same training
    options (e.g. another --threshold or --top) trains nothing.

    \b
    Examples:
      pipeline label-issues datasets/mnist --out reports/mnist-issues
      pipeline label-issues datasets/mnist --out reports/mnist-issues --threshold 0.05 --top 200
      pipeline label-issues datasets/raccoon --out reports/raccoon-issues --folds 3
    """
    from pipeline.config import load_config
    from pipeline.core import ui
    from pipeline.labeling.issues import find_issues

    config = load_config(config_file=config_file) if config_file is not None else None
    result = find_issues(data, out, folds=folds, config=config, epochs=epochs, seed=seed, threshold=threshold,
                         top=top, overwrite=overwrite)
    what = "objects" if result.task != "classification" else "samples"
    rows: list[tuple[str, object]] = [("dataset", f"{data} ({result.samples} {what})")]
    if result.reused:
        rows.append(("probabilities", f"reused from {out / 'probs.npy'} (same dataset and training options: "
                                      "no training)"))
    else:
        rows.append(("probabilities", f"{result.folds} folds x {result.epochs} epochs, out of sample"))
    rows.append(("out-of-sample accuracy", f"{result.accuracy:.4f}"))
    for kind, n in result.counts.items():
        if n or kind in ("label", "box-label") and (kind == "box-label") == (result.task != "classification"):
            rows.append((f"{kind} issues", n))
    for entry in result.issues[:5]:
        obj = f" object {entry['object']}" if "object" in entry else ""
        rows.append((f"#{entry['rank']}", f"{entry['id']}{obj}: {entry['given']} -> {entry['suggested']} "
                                          f"(score {entry['score']:.3f}, {entry['kind']})"))
    rows.append(("time", f"{result.seconds:.1f} s"))
    rows.append(("output", f"{out} (issues.json, issues.csv, issues.png)"))
    ui.summary(f"found {len(result.issues)} issues in {data}", rows)
