"""Layers that only point down: every `pipeline` module's imports, read with `ast`, against this table.

=========  ==========================================================  =========================================
layer      modules                                                     may import (besides itself)
=========  ==========================================================  =========================================
core       pipeline.core.* (dataset model, validation, writer,         nothing
           geometry, images, packs, paths, rng, errors, ui)
model      pipeline.model.* (NumberModel and its parts)                core
config     pipeline.config (training and augment settings)             core
formats    pipeline.formats.* (readers, writers, the ingest API)       core
sources    pipeline.sources.* (downloads returning a `Download`)       core, formats
stages     pipeline.augment.*, train, evaluate, fetch, split, check,   core, model, config, formats, sources,
           crop, stats, viz, tensor_cache, labeling.*, view.*,         other stages
           engines, distributed, streaming
commands   pipeline.commands.*, pipeline.cli, pipeline.__main__        everything
=========  ==========================================================  =========================================

The package root (`pipeline/__init__.py`: the version) may be imported from anywhere. Imports
inside functions (deferred, to keep `pipeline --help` fast) count like the ones at the top, and so
do imports under `if TYPE_CHECKING:`: a layer that needs a name from above for its annotations
is as tangled as one that calls it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

STAGES = {"augment", "train", "evaluate", "fetch", "split", "check", "crop", "stats", "viz", "tensor_cache",
          "labeling", "view", "engines", "distributed", "streaming"}
LOWER = {"core": set(), "model": {"core"}, "config": {"core"}, "formats": {"core"}, "sources": {"core", "formats"}}
ALLOWED = {**LOWER, **{stage: {"core", "model", "config", "formats", "sources"} | STAGES for stage in STAGES}}
TOP = {"commands", "cli", "__main__"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """`pipeline/formats/ingest.py` -> `pipeline.formats.ingest`; a package's `__init__` is the package."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    """The layer of a module: its first name below `pipeline` ("" for the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) of every `pipeline` import in `source`, at any depth; relative imports resolved
    against `package` (the importing module's package).

    `from pipeline import formats` names the module `pipeline.formats`; `from pipeline.core import ui`
    names `pipeline.core.ui` (a name that is not a module only makes the name longer, never changes
    its layer).
    """
    found = []
    parts = package.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "pipeline" or name.startswith("pipeline.")]


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import that points up or sideways out of its layer, as `path:line: module imports target`."""
    out = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        here = layer(module)
        if here in TOP or here == "":
            continue
        allowed = ALLOWED.get(here)
        package_name = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for line, target in imported(path.read_text(encoding="utf-8"), package_name):
            there = layer(target)
            if there in ("", here) or target == "pipeline.__version__":
                continue
            if allowed is None or there not in allowed:
                rel = path.relative_to(package.parent)
                out.append(f"{rel}:{line}: {module} (layer {here or '?'}) imports {target} (layer {there})")
    return out


def test_every_module_has_a_layer() -> None:
    # a new top-level module must be placed in the table above before it can be checked
    names = {layer(module_name(p)) for p in PACKAGE.rglob("*.py")} - {""}
    assert names - set(ALLOWED) - TOP == set()


def test_imports_point_down() -> None:
    found = violations()
    assert not found, "imports that point up (see the layer table in tests/test_architecture.py):\n" + "\n".join(found)


def test_nothing_outside_the_commands_imports_them() -> None:
    found = [v for v in violations() if "(layer commands)" in v or "(layer cli)" in v]
    assert found == []


@pytest.mark.parametrize(("module", "source", "bad"), [
    # a deferred import inside a function counts
    ("pipeline.formats.tables", "def f():\n    from pipeline.formats.ingest import x\n    from pipeline.commands.convert import y\n",
     ["pipeline.commands.convert.y"]),
    # so does one under TYPE_CHECKING
    ("pipeline.core.dataset", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline.formats import base\n",
     ["pipeline.formats.base"]),
    # `from pipeline import sources` names the package sources
    ("pipeline.formats.ingest", "from pipeline import sources\n", ["pipeline.sources"]),
    # a relative import is resolved against the importing module's package
    ("pipeline.sources.url", "from ..commands import fetch_url\nfrom . import http\n", ["pipeline.commands.fetch_url"]),
    # a stage may use another stage, the model and the sources, never a command
    ("pipeline.train", "import pipeline.evaluate\nfrom pipeline.model import NumberModel\nimport pipeline.commands.train\n",
     ["pipeline.commands.train"]),
    # the version is the package root's, open to every layer
    ("pipeline.sources.http", "from pipeline import __version__\n", []),
])
def test_the_check_sees_each_kind_of_import(tmp_path: Path, module: str, source: str, bad: list[str]) -> None:
    package = tmp_path / "pipeline"
    path = package.joinpath(*module.split(".")[1:]).with_suffix(".py")
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    found = violations(package)
    assert [v.rsplit(" imports ", 1)[1].split(" ")[0] for v in found] == bad
    for message in found:  # the message names the file, the line, the module and the import
        assert message.startswith(f"pipeline/{path.relative_to(package).as_posix()}:") and module in message
