"""`pipeline model`: inspect NumberModel's variants (layer shapes, parameters, multiply-adds)."""

from __future__ import annotations

import json

import click


@click.group("model")
def model() -> None:
    """Inspect NumberModel's variants: layer shapes, parameters and multiply-adds.

    \b
    Examples:
      pipeline model summary --variant flattened
      pipeline model summary --variant all
      pipeline model compare --time
    """


@model.command("summary")
@click.option("--variant", default="standard", show_default=True, metavar="NAME",
              help="A NumberModel variant, `autoencoder` (the transposed-conv decoder), or `all` for one line each.")
@click.option("--input", "input_text", default="1x32x32", show_default=True, metavar="CxHxW",
              help="Input shape of one image; C is the model's input channels.")
@click.option("--classes", default=10, show_default=True, type=click.IntRange(min=1), help="Number of classes.")
@click.option("--groups", type=click.IntRange(min=1), help="Groups of the `grouped` variant's second conv (default 2).")
@click.option("--widths", metavar="W1,W2[,W3]",
              help="Output channels of the convs: two for the NumberModel variants (default 6,16; grouped 8,16), "
                   "three for `wide` and `fast` (conv 1, conv 2, hidden fc; default 32,64,256 and 20,40,256) and for "
                   "the autoencoder's encoder "
                   "(default 16,32,64). `pipeline train --set widths=...` "
                   "takes the same.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout instead of the table.")
def summary(variant: str, input_text: str, classes: int, groups: int | None, widths: str | None,
            as_json: bool) -> None:
    """Each layer's output shape, weight shape, parameters and multiply-adds, and the totals.

    Counts come from the layers' settings (see docs/model.md for the formulas); MACs are per image.

    \b
    Examples:
      pipeline model summary
      pipeline model summary --variant depthwise-separable --input 3x32x32 --classes 43
      pipeline model summary --variant grouped --groups 4 --json
      pipeline model summary --variant standard --widths 12,32
      pipeline model summary --variant autoencoder
      pipeline model summary --variant all
    """
    from pipeline.config import parse_widths
    from pipeline.core import ui
    from pipeline.core.errors import UsageError
    from pipeline.model.summary import parse_input, summarize, summary_model

    shape = parse_input(input_text)
    if variant == "all":
        if groups is not None:
            raise UsageError("--groups applies to --variant grouped only", fix="drop --groups with --variant all")
        if widths is not None:
            raise UsageError("--widths applies to one variant", fix="drop --widths with --variant all")
        _print_compare(shape, classes, timed=False, as_json=as_json)
        return
    options = {}
    if groups is not None:
        if variant != "grouped":
            raise UsageError(f"--groups applies to --variant grouped, not {variant!r}", fix="drop --groups")
        options["groups"] = groups
    if widths is not None:
        options["widths"] = parse_widths(widths, "--widths")
    net = summary_model(variant, shape[0], classes, **options)
    result = summarize(net, shape, variant=variant)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(result.table())
    click.echo()
    ui.summary(f"{result.model} ({variant}) for one {input_text} input", [
        ("parameters", f"{result.params:,}"),
        ("multiply-adds", f"{result.macs:,} ({result.macs / 1e6:.2f} M)"),
        ("output", "x".join(str(s) for s in result.output)),
    ])


@model.command("compare")
@click.option("--input", "input_text", default="1x32x32", show_default=True, metavar="CxHxW",
              help="Input shape of one image.")
@click.option("--classes", default=10, show_default=True, type=click.IntRange(min=1), help="Number of classes.")
@click.option("--time", "timed", is_flag=True,
              help="Also measure CPU forward throughput (eval mode, batches of 256, median of 5).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON on stdout.")
def compare(input_text: str, classes: int, timed: bool, as_json: bool) -> None:
    """One line per variant: parameters and multiply-adds (and their ratio to `standard`).

    \b
    Examples:
      pipeline model compare
      pipeline model compare --time
      pipeline model compare --input 3x32x32 --classes 43 --json
    """
    from pipeline.model.summary import parse_input

    _print_compare(parse_input(input_text), classes, timed=timed, as_json=as_json)


def _print_compare(shape: tuple[int, ...], classes: int, *, timed: bool, as_json: bool) -> None:
    from pipeline.core import ui
    from pipeline.model.summary import compare as compare_variants
    from pipeline.model.summary import compare_table

    if timed:
        import torch

        from pipeline.train import auto_threads

        torch.set_num_threads(auto_threads())  # one per idle core: busy cores stall OpenMP threads
    items = compare_variants(shape, classes, timed=timed)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    click.echo(compare_table(items))
    click.echo()
    rows = [("variants", len(items)), ("input", "x".join(str(s) for s in shape)), ("classes", classes)]
    if timed:
        import torch

        rows.append(("forward", f"CPU, {torch.get_num_threads()} thread(s), eval mode, batches of 256, median of 5"))
    ui.summary("NumberModel variants compared", rows)
