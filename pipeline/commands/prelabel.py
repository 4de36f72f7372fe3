"""`pipeline prelabel RUN DATASET --format labelstudio|labelme|cvat --out DIR`: a run's predictions
as pre-annotations for a labelling tool (see pipeline/labeling/prelabel.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("prelabel")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(["labelstudio", "labelme", "cvat"]),
              help="The labelling tool to review in.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--issues", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="The folder `pipeline label-issues --out` wrote: only its flagged samples, the given label as "
                   "the annotation and the suggested one as the prediction.")
@click.option("--checkpoint", default="best", show_default=True, help="best, last, or a checkpoint file name.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier prelabel or export at --out.")
def prelabel(run: Path, dataset_path: Path, fmt: str, out: Path, issues: Path | None, checkpoint: str, device: str,
             overwrite: bool) -> None:
    """Write RUN's predictions on DATASET as pre-annotations to correct in Label Studio, labelme or CVAT.

    DATASET is a classification dataset, labelled or not (NumberModel classifies whole images; a
    detection dataset is refused: pre-label its objects with `pipeline crop` first). Each sample's
    prediction is the top class and its softmax probability; its model version is RUN's folder name
    and the checkpoint's hash (`runs/mnist@3f2a9c0d1b7e`).

    \b
    labelstudio  tasks.json (predictions with score and model_version; data.sample_id = sample id),
                 label_config.xml (create the project with it), images/. Serve the images with
                 LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true, LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=DIR
                 and a Local Files storage for DIR/images.
    labelme      a JSON beside each image: every class a flag, the predicted one ticked, and a flag
                 __model VERSION: CLASS (score S)__ showing the prediction.
    cvat         annotations.xml (CVAT for images 1.1): one tag per image with score and model_version.

    Review, export, then bring the labels back with `pipeline relabel DATASET --from ...`.

    \b
    Examples:
      pipeline prelabel runs/mnist datasets/unlabelled --format labelstudio --out review
      pipeline prelabel runs/mnist datasets/mnist --format labelme --out review-lm --issues issues/
    """
    from pipeline.core import ui
    from pipeline.labeling.prelabel import prelabel as run_prelabel

    report = run_prelabel(run, dataset_path, fmt, out, issues=issues, checkpoint=checkpoint, device=device,
                          overwrite=overwrite)
    rows: list[tuple[str, object]] = [
        ("samples", f"{report.samples:,}" + (" (flagged by label-issues)" if report.from_issues else "")),
        ("model", report.model_version),
    ]
    if report.mean_score is not None:
        rows.append(("mean score", f"{report.mean_score:.3f}"))
    main = {"labelstudio": "tasks.json + label_config.xml", "labelme": "one JSON per image",
            "cvat": "annotations.xml"}[fmt]
    rows.append(("output", f"{out} ({main}, images)"))
    ui.summary(f"prelabel {dataset_path} for {fmt}", rows)
