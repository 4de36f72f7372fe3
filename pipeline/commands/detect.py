"""`pipeline detect SRC`: every format that would import SRC, with the files it recognised, and
why each other format said no (as datumaro's ``detect-format``)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("detect")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as JSON on stdout instead of the table.")
@click.option("--images", "images", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="The images are under DIR (as `pipeline import --images DIR`): SRC may hold label files alone.")
def detect(src: Path, as_json: bool, images: Path | None) -> None:
    """List the formats SRC could be imported as, best first, and why each other format was rejected.

    Each candidate shows its score (higher wins), what it found, a cheap count of what it would
    import (images, objects, classes: its annotation files parsed, no image opened) and the
    annotation files it recognised. `pipeline import auto` takes the best one, and refuses when another candidate
    recognises annotation files of its own (a labelme folder with a COCO file beside its JSONs):
    name the format, or point SRC at one format's folder. An export that is recognised but not
    read (a Roboflow multi-label CSV, a VoTT export) is named, and `import auto` refuses it. Exit 0
    when a format fits, 2 when none does. With --json: {"src", "auto" (the format `import auto` takes, null when it refuses),
    "candidates": [{"format", "accepted", "description", "score", "files", "counts", "note"}]}.

    \b
    With --images DIR the images are looked for under DIR, so a folder of label files alone (YOLO
    txt files with obj.names, VOC XMLs, a COCO JSON) is recognised as `import auto --images DIR`
    recognises it.

    \b
    Examples:
      pipeline detect downloads/labelme-examples
      pipeline detect downloads/coco --json
      pipeline detect exports/labels --images photos/
    """
    from pipeline.core import ui
    from pipeline.core.errors import UsageError
    from pipeline.formats.detect import rivals, survey
    from pipeline.formats.unsupported import refusal

    candidates = survey(src, count=True, images=images)
    accepted = [c for c in candidates if c.accepted]
    clash = rivals(candidates)
    unread = refusal(src)  # an export `import` refuses by name, whatever else recognises its files
    auto = accepted[0].format if accepted and not clash and not unread else None
    if as_json:
        click.echo(json.dumps({"src": str(src), "auto": auto, "candidates": [c.to_json() for c in candidates]},
                              ensure_ascii=False, indent=2))
    else:
        rows: list[tuple[str, object]] = []
        for c in accepted:
            rows.append((c.format, f"score {c.score:g}: {c.description}"))
            if c.counts:
                rows.append(("", "would import: " + ", ".join(f"{n} {k}" for k, n in c.counts.items())))
            elif c.note:
                rows.append(("", c.note))
            shown = ", ".join(c.files[:3]) + (f", ... ({len(c.files)} in all)" if len(c.files) > 3 else "")
            if shown:
                rows.append(("", f"files: {shown}"))
        for c in candidates:
            if not c.accepted:
                rows.append((c.format, f"rejected: {c.description}"))
        if unread:
            rows.append(("import auto", f"refused: {unread}"))
        elif clash:
            rows.append(("import auto", f"refused: {', '.join(c.format for c in [accepted[0], *clash])} each cover "
                                        "a part of the folder; name the format or point at one format's folder"))
        elif auto:
            rows.append(("import auto", auto))
        ui.summary(f"formats of {src}", rows)
    if not accepted:
        raise UsageError(f"{src}: no known layout found", fix="see the reasons above; name the format explicitly, "
                         "e.g. `pipeline import voc SRC --out DIR`")
