"""`pipeline consensus DATASET --out NEW`: consensus labels and annotator quality from several annotators
(the work is in pipeline/labeling/consensus.py)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option, overwrite_option


@click.command("consensus")
@click.argument("data", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset version.")
@click.option("--run", type=click.Path(path_type=Path),
              help="Model probabilities to weigh the annotators against: a `pipeline label-issues` folder "
                   "(out-of-sample, best) or a `pipeline train` run. Default: the annotators' own votes.")
@click.option("--annotators", "annotators_file", type=click.Path(path_type=Path),
              help="Also write each annotator's quality to this CSV file.")
@overwrite_option
@max_pixels_option
def consensus(data, out, run, annotators_file, overwrite) -> None:
    """Agree on one label per image from several annotators' labels (cleanlab's CROWDLAB).

    DATASET keeps each annotator's label in its samples' `annotations` (import a Label Studio or
    CVAT export with --annotations all). The new dataset has the consensus label as each annotated
    sample's label and meta.consensus with the agreement (fraction of annotators who chose it), the
    consensus quality score (0..1) and every annotator's label; its lineage records each annotator's
    quality. With --run the annotators are weighed against a model's probabilities.

    \b
    Examples:
      pipeline import labelstudio export.json --out datasets/votes --annotations all
      pipeline consensus datasets/votes --out datasets/agreed --annotators annotators.csv
      pipeline consensus datasets/votes --out datasets/agreed --run reports/votes-issues --overwrite
    """
    from pipeline.core import ui
    from pipeline.labeling.consensus import consensus as agree

    result = agree(data, out, run=run, annotators_file=annotators_file, overwrite=overwrite)
    rows: list[tuple[str, object]] = [("dataset", str(data)),
                                      ("annotated samples", f"{result.annotated} ({result.changed} labels changed)"),
                                      ("probabilities", result.probabilities)]
    low = sorted(result.rows, key=lambda r: r["quality"])[:3]
    for r in low:
        rows.append((f"lowest quality: {r['id']}", f"{r['label']} (quality {r['quality']:.3f}, "
                                                   f"agreement {r['agreement']:.2f})"))
    for a in sorted(result.annotators, key=lambda a: a["quality"]):
        rows.append((f"annotator {a['annotator']}", f"quality {a['quality']:.3f}, agrees with the consensus "
                                                    f"{a['agreement_with_consensus']:.2f} of {a['labels']} labels"))
    if annotators_file is not None:
        rows.append(("annotator table", str(annotators_file)))
    rows.append(("output", str(out)))
    ui.summary(f"consensus of {result.annotated} samples from {len(result.annotators)} annotators", rows)
