"""`pipeline validate RUN --data DATASET`: accuracy, per-class metrics and a confusion matrix (classifiers),
reconstruction error (autoencoders)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option
from pipeline.core import ui


@click.command("validate")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Dataset to evaluate on (a classification dataset or an ImageFolder tree).")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="Which samples (a dataset without any split is evaluated whole).")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best.pt (best validation accuracy) or last.pt (last epoch).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of the summary.")
@max_pixels_option
def validate(run, data, split, checkpoint, as_json) -> None:
    """Evaluate the model in RUN on DATASET with the run's own preprocessing.

    Writes RUN/validate-SPLIT/report.json (accuracy, per-class precision/recall/F1, confusion
    matrix) and RUN/validate-SPLIT/confusion.png. For an autoencoder run the report holds the
    reconstruction error (mean squared error on [0, 1] pixels, PSNR in dB) and
    RUN/validate-SPLIT/reconstructions.png shows originals above their reconstructions.

    \b
    Examples:
      pipeline validate runs/mnist --data datasets/mnist-embedded --split test
      pipeline validate runs/mnist --data datasets/mnist-embedded --json
    """
    from pipeline.evaluate import validate_run

    report = validate_run(run, data, split=split, checkpoint=checkpoint)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    if report.get("task") == "reconstruction":
        rows = [("reconstruction error", f"MSE {report['mse']:.5f}, PSNR {report['psnr']:.1f} dB "
                                         f"({report['count']} images, split {split})"),
                ("median / worst MSE", f"{report['mse_median']:.5f} / {report['mse_worst']:.5f}"),
                ("checkpoint", report["checkpoint"])]
        if report.get("note"):
            rows.append(("note", report["note"]))
        rows += [("report", report["outputs"]["report"]), ("reconstructions", report["outputs"]["reconstructions_png"])]
        ui.summary(f"validated {run} on {data}", rows)
        return
    width = max(len(c) for c in report["per_class"])
    ui.info(f"{'class'.ljust(width)}  precision  recall  f1      support")
    for name, m in report["per_class"].items():
        ui.info(f"{name.ljust(width)}  {m['precision']:.4f}     {m['recall']:.4f}  {m['f1']:.4f}  {m['support']}")
    rows = [("accuracy", f"{report['accuracy']:.4f} ({report['count']} images, split {split})"),
            ("macro F1", f"{report['macro']['f1']:.4f}"),
            ("checkpoint", report["checkpoint"])]
    if report.get("note"):
        rows.append(("note", report["note"]))
    rows += [("report", report["outputs"]["report"]), ("confusion", report["outputs"]["confusion_png"])]
    ui.summary(f"validated {run} on {data}", rows)
