"""The `pipeline` command: one Click group, one subcommand per stage.

Subcommands live in `pipeline/commands/` and are imported only when run, so `pipeline --help`
starts fast and never imports torch. `--debug` (show tracebacks) and `--quiet` (no progress bars)
may be given before the subcommand or anywhere after it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback

import click

from pipeline import __version__
from pipeline.core import ui
from pipeline.core.errors import PipelineError

# name -> (module:attribute, one-line help). The help text is here so `--help` imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": ("pipeline.commands.fetch:fetch", "Download a dataset (MNIST, Kaggle, Hugging Face, URLs) into a dataset."),
    "crawl": ("pipeline.commands.crawl:crawl", "Collect images from web pages, politely (robots.txt, rate limits)."),
    "detect": ("pipeline.commands.detect:detect", "List the formats a folder could be imported as, and why others were rejected."),
    "import": ("pipeline.commands.convert:import_cmd", "Import labelled data (ImageFolder, VOC, YOLO, CreateML, labelme, COCO, CVAT, WebDataset)."),
    "export": ("pipeline.commands.convert:export_cmd", "Export a dataset to ImageFolder, VOC, YOLO, CreateML, labelme, COCO, CVAT or WebDataset shards."),
    "split": ("pipeline.commands.split:split", "Assign train/val/test splits, stratified and leak-free."),
    "check": ("pipeline.commands.check:check", "Check labels: missing images, bad boxes, duplicates, leakage."),
    "preview": ("pipeline.commands.preview:preview", "Contact sheet of samples with their labels (or a recipe's output)."),
    "stats": ("pipeline.commands.stats:stats", "Counts per class and split, box-size histogram."),
    "crop": ("pipeline.commands.crop:crop", "Turn every labelled object into a classification sample."),
    "augment": ("pipeline.commands.augment:augment", "Write a dataset version with N augmented copies per sample."),
    "train": ("pipeline.commands.train:train", "Train NumberModel on a classification dataset."),
    "validate": ("pipeline.commands.validate:validate", "Accuracy, per-class metrics and confusion matrix of a run."),
    "predict": ("pipeline.commands.predict:predict", "Classify images with a trained run."),
    "prelabel": ("pipeline.commands.prelabel:prelabel", "A run's predictions as pre-annotations for Label Studio, labelme or CVAT."),
    "relabel": ("pipeline.commands.relabel:relabel", "Write a new dataset version with reviewed labels (Label Studio, labelme, CVAT, edits)."),
    "view": ("pipeline.commands.view:view", "Browse a dataset in the browser and fix labels (a new version)."),
    "label-issues": ("pipeline.commands.label_issues:label_issues", "Find likely label errors, near-duplicates and outliers (cleanlab)."),
    "consensus": ("pipeline.commands.consensus:consensus", "Consensus labels and annotator quality from several annotators (CROWDLAB)."),
    "model": ("pipeline.commands.model:model", "Inspect NumberModel variants (layer shapes, parameters, MACs)."),
}

# "debug": the effective flag of the running command; "argv_debug"/"argv_quiet": given after the subcommand
# (stripped by `main`). Recomputed on every invocation so one command's flags never leak into the next.
_STATE = {"debug": False, "argv_debug": False, "argv_quiet": False}


def _available(target: str) -> bool:
    module = target.split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A Click group whose subcommands are imported on first use.

    `lazy` maps a command name to ("module:attr", short help).
    """

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names |= {n for n, (target, _) in self.lazy.items() if _available(target)}
        order = list(self.lazy)
        return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and _available(self.lazy[name][0]):
            module_name, attr = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=formatter.width - 6)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            if _STATE["debug"] or ctx.parent is not None:
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog="Run `pipeline COMMAND --help` for a runnable example of each stage.",
)
@click.version_option(__version__, prog_name="pipeline")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--quiet", is_flag=True, help="No progress bars or notes; summaries only.")
def cli(debug: bool, quiet: bool) -> None:
    """Computer-vision data from wherever it lives to a trained model.

    \b
    Typical path (all offline on the embedded data):
      pipeline fetch mnist --embedded --out datasets/mnist-embedded
      pipeline split datasets/mnist-embedded --val 0.1
      pipeline train datasets/mnist-embedded --out runs/mnist
      pipeline validate runs/mnist --data datasets/mnist-embedded --split test
    """
    _STATE["debug"] = debug or _STATE["argv_debug"] or bool(os.environ.get("PIPELINE_DEBUG"))
    ui.set_quiet(quiet or _STATE["argv_quiet"])


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors with exit code 2, tracebacks only with --debug."""
    try:
        _main(argv)
    finally:
        _STATE.update(debug=False, argv_debug=False, argv_quiet=False)


def _main(argv: list[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE.update(debug=False, argv_debug="--debug" in args[1:], argv_quiet="--quiet" in args[1:])
    args = args[:1] + [a for a in args[1:] if a not in ("--debug", "--quiet")]
    debug = _STATE["argv_debug"] or "--debug" in args or bool(os.environ.get("PIPELINE_DEBUG"))
    ui.route_library_warnings()  # a library's warning prints as our one-line warning, without its path
    try:
        rc = cli.main(args=args, prog_name="pipeline", standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc:
            sys.exit(rc)  # ctx.exit(code) (e.g. a PipelineError caught in LazyGroup.invoke) returns the code here
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except PipelineError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line unless --debug
        if debug:
            traceback.print_exc()
            sys.exit(1)
        click.echo(f"error: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)
