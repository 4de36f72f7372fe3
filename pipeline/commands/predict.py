"""`pipeline predict RUN IMAGE...`: class and top-k probabilities per image (an autoencoder run: reconstructions)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option
from pipeline.core import ui
from pipeline.core.errors import PipelineError


@click.command("predict")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--topk", type=click.IntRange(min=1), default=3, show_default=True, help="Classes listed per image.")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best.pt or last.pt.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Autoencoder runs: folder for the reconstructions [default: RUN/predict].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@max_pixels_option
def predict(run, images, topk, checkpoint, out, as_json) -> None:
    """Classify IMAGES with the model in RUN, preprocessed exactly as in training.

    Grayscale, resize and the run's normalization; a photo of a dark digit on light paper is
    inverted (decided by its border pixels) to match MNIST's white-on-black. Unreadable images
    are reported and the others still classified (exit code 2 when any failed).

    A run of `--variant autoencoder` reconstructs each image instead: OUT/NAME.png (the model's
    input size) and its mean squared error and PSNR.

    \b
    Examples:
      pipeline predict runs/mnist digit.png photo.jpg
      pipeline predict runs/mnist digit.png --topk 5 --json
      pipeline predict runs/ae digit.png --out reconstructions/
    """
    from pipeline.evaluate import predict_images, run_task
    from pipeline.train import load_run_info

    if run_task(load_run_info(run)) == "reconstruction":
        _reconstruct(run, list(images), checkpoint, out, as_json)
        return
    results, errors = predict_images(run, list(images), topk=topk, checkpoint=checkpoint)
    if as_json:
        click.echo(json.dumps({"run": str(run), "checkpoint": checkpoint, "predictions": results,
                               "errors": [str(e) for e in errors]}, ensure_ascii=False))
    else:
        for r in results:
            top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["topk"])
            click.echo(f"{r['image']}: {r['class']} ({r['probability']:.3f})  top-{len(r['topk'])}: {top}"
                       + ("  [inverted: light background]" if r["inverted"] else ""))
        for e in errors:
            ui.warn(str(e))
        ui.summary(f"classified {len(results)} of {len(images)} images",
                   [("run", f"{run} ({checkpoint})"), ("unreadable", len(errors))])
    if errors:
        raise PipelineError(f"{len(errors)} of {len(images)} images could not be classified; first: "
                            f"{errors[0].message}", fix="check or remove those files")


def _reconstruct(run: Path, images: list[Path], checkpoint: str, out: Path | None, as_json: bool) -> None:
    """An autoencoder run: write each image's reconstruction and print its error."""
    from pipeline.evaluate import reconstruct_images

    results, errors = reconstruct_images(run, images, out, checkpoint=checkpoint)
    if as_json:
        click.echo(json.dumps({"run": str(run), "checkpoint": checkpoint, "reconstructions": results,
                               "errors": [str(e) for e in errors]}, ensure_ascii=False))
    else:
        for r in results:
            click.echo(f"{r['image']}: {r['reconstruction']}  MSE {r['mse']:.5f}, PSNR {r['psnr']:.1f} dB"
                       + ("  [inverted: light background]" if r["inverted"] else ""))
        for e in errors:
            ui.warn(str(e))
        folder = Path(results[0]["reconstruction"]).parent if results else (out or run / "predict")
        ui.summary(f"reconstructed {len(results)} of {len(images)} images",
                   [("run", f"{run} ({checkpoint})"), ("output", str(folder)), ("unreadable", len(errors))])
    if errors:
        raise PipelineError(f"{len(errors)} of {len(images)} images could not be reconstructed; first: "
                            f"{errors[0].message}", fix="check or remove those files")
