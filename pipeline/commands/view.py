"""`pipeline view DATASET`: browse a dataset in the browser and fix its labels."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("view")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback requires the token printed at start.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser; only print the address.")
@click.option("--issues", "issues_dir", type=click.Path(path_type=Path, file_okay=False),
              help="A `pipeline label-issues` output folder (its issues.json): filter and sort by issue rank.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path, file_okay=False),
              help="A trained run: predict every sample once (cached) to filter where the model disagrees.")
@click.option("--edits", "edits_file", type=click.Path(path_type=Path, dir_okay=False),
              help="The edits file to append to (default: DATASET.edits.jsonl beside the dataset folder).")
def view(dataset_path: Path, port: int, host: str, no_browser: bool, issues_dir: Path | None, run_dir: Path | None,
         edits_file: Path | None) -> None:
    """Browse DATASET in a local web page: thumbnails with their boxes, polygons, keypoints and
    classes; filters by split, class, `check` finding, label-issue rank (--issues), model
    disagreement (--run), augmented or original, and text in the id or file name; each sample's
    fields, lineage and augmentation parents. Fix labels by keyboard (digits and letters set the
    class, arrows move, x marks for removal; in a detection sample select a box to change or delete
    it, drag to draw one). Edits go to an edits file as you make them; Save as writes a new dataset
    version beside DATASET (`pipeline relabel` semantics). DATASET itself is never modified.

    The first start indexes samples.jsonl once (cached beside the tensor cache); thumbnails are
    cached on disk. The JSON API the page uses is documented in docs/view.md. Stop with Ctrl-C.

    \b
    Examples:
      pipeline view datasets/mnist-embedded
      pipeline view datasets/raccoon --no-browser --port 0
      pipeline view datasets/mnist --issues reports/mnist-issues --run runs/mnist
      pipeline view datasets/raccoon --host 0.0.0.0     # prints an address with ?token=...
    """
    from pipeline.core import ui
    from pipeline.core.errors import UsageError
    from pipeline.train import dataset_folder
    from pipeline.view.app import create_app
    from pipeline.view.server import serve
    from pipeline.view.session import Options, Session, default_edits_path

    root = dataset_folder(dataset_path)
    if not root.is_dir():
        raise UsageError(f"{dataset_path}: no such dataset folder", fix="check the path")
    edits = edits_file or default_edits_path(root)
    if edits.resolve().is_relative_to(root.resolve()):
        raise UsageError(f"--edits {edits}: inside the dataset folder, which `pipeline view` never modifies",
                         fix="choose a file outside it")
    session = Session(root, Options(edits=edits, issues=issues_dir, run=run_dir))
    for note in (session.issues_note, session.run_note):
        if note:
            ui.info(note)

    def announce(address) -> None:
        click.echo(f"serving {root} ({len(session.index)} samples) at {address.url}", err=False)
        if address.token:
            click.echo("  the token in this address is required: keep it to yourself")
        click.echo("  Ctrl-C stops the server; edits are kept as you make them")

    def factory(**kwargs):
        return create_app(session, **kwargs)

    try:
        address = serve(factory, host, port, open_browser=not no_browser, announce=announce)
    finally:
        session.index.close()
    rows = [("samples", len(session.index)), ("edits file", f"{session.edits_path} ({len(session.pending)} pending)")]
    rows += [("saved", out) for out in session.saved] or [("saved", "nothing (Save as writes a new version)")]
    ui.summary(f"viewed {root} at {address.url.split('?')[0]}", rows)
