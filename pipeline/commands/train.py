"""`pipeline train DATASET --out RUN`: train NumberModel or the autoencoder (the loop lives in pipeline/train.py)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import engine_options, max_pixels_option
from pipeline.core import ui


@click.command("train")
@click.argument("data", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder (checkpoints, logs, metrics).")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="YAML config (keys as in configs/train/default.yaml); applied over the recipe.")
@click.option("--recipe", type=click.Choice(["default", "seed"]), default="default", show_default=True,
              help="default: one-cycle, batch 128, fast; seed: the seed's exact settings (batch 32, Adam 1e-3, 10 epochs).")
@click.option("--variant", help="NumberModel variant, or `autoencoder` to learn reconstructions "
                               "(`pipeline model summary --variant all` lists the classifiers).")
@click.option("--epochs", type=int, help="Epochs (default: auto, enough passes to see `min_samples` (150,000 by default) samples, at least 3).")
@click.option("--batch-size", type=int, help="Batch size.")
@click.option("--lr", type=float, help="Learning rate (the one-cycle peak for the default recipe).")
@click.option("--seed", type=int, help="Seed for model init, shuffling and augmentation.")
@click.option("--augment", "augment", type=click.Path(path_type=Path),
              help="Online augmentation recipe (YAML) applied to every batch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train (auto: GPU when present).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any config key, e.g. --set warmup=0.3 --set val_split=null (repeatable).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last finished epoch.")
@click.option("--val", "val", metavar="SHARDS",
              help="Training from WebDataset shards: the validation shards (paths or brace patterns).")
@engine_options
@max_pixels_option
def train(data, out, config_file, recipe, variant, epochs, batch_size, lr, seed, augment, device, sets, resume,
          val, engine, address) -> None:
    """Train NumberModel on DATASET (a classification dataset or an ImageFolder tree, or WebDataset shards).

    Images are decoded once into a cached uint8 array; each epoch shuffles it by index and
    normalizes whole batches. The run folder gets config.yaml, run.json, metrics.json, a checkpoint
    per epoch plus best.pt/last.pt, and TensorBoard logs (tensorboard --logdir RUN/tensorboard:
    scalars, the model graph, weight and gradient histograms, the augmented batches, a confusion
    matrix per epoch, hyperparameters). With --engine ray the cache's images are decoded by Ray
    workers when it is built (docs/ray.md); training itself runs here.

    With --variant autoencoder the transposed-convolution autoencoder learns to reconstruct the
    images (mean squared error; labels are not needed, any image dataset works) and the run also
    gets reconstructions.png. Model options are config keys: --set groups=4 (grouped),
    --set widths=12,32 (NumberModel) or widths=16,32,64 (autoencoder).

    DATASET may also be WebDataset shards (`pipeline export --format webdataset`): paths or brace
    patterns ('shards/train-{000000..000009}.tar', local files), or their export folder. They are
    streamed (one pass measures them, then each epoch reads them in a shuffled order through a
    shuffle buffer), never written into a dataset; --val names the validation shards.

    Under torchrun it trains data-parallel (DDP; gloo on the CPU, NCCL on GPUs): --batch-size is the
    global batch, split among the processes; rank 0 writes the run; --resume works the same
    (docs/distributed.md).

    \b
    Examples:
      pipeline train datasets/mnist-embedded --out runs/mnist
      torchrun --standalone --nproc-per-node 2 -m pipeline train datasets/mnist-embedded --out runs/ddp
      pipeline train 'shards/train-{000000..000009}.tar' --val shards/val-000000.tar --out runs/stream
      pipeline train datasets/mnist-embedded --out runs/seed --recipe seed
      pipeline train photos/ --out runs/photos --epochs 20 --set val_split=test
      pipeline train datasets/mnist-embedded --out runs/mnist --resume
      pipeline train datasets/mnist-embedded --out runs/ae --variant autoencoder
      pipeline train datasets/mnist-embedded --out runs/g4 --variant grouped --set groups=4
    """
    from pipeline.config import load_config, parse_set
    from pipeline.engines import make_engine
    from pipeline.train import is_run, resume_config
    from pipeline.train import train as run_training

    runner = make_engine(engine, address)

    options = {"variant": variant, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
               "augment": str(augment) if augment is not None else None, "device": device}
    overrides = parse_set(sets)
    if resume and is_run(out):
        if config_file is not None:
            overrides = {**load_config(config_file=config_file).to_dict(), **overrides}
        config = resume_config(out, {**{k: v for k, v in options.items() if v is not None}, **overrides})
    else:
        config = load_config(recipe_name=recipe, config_file=config_file, options=options, sets=overrides)
    result = run_training(data, out, config, resume=resume, val=val, engine=runner)
    if result.rank != 0:
        return  # under torchrun rank 0 speaks for the run

    final = result.history[-1] if result.history else {}
    rows: list[tuple[str, object]] = [("dataset", str(data)), ("device", result.device)]
    if result.world_size > 1:
        rows.append(("processes", f"{result.world_size} (torchrun; global batch {config.batch_size}, "
                                  f"about {config.batch_size // result.world_size} per process)"))
    rows.append(("epochs", f"{len(result.history)} of {result.epochs}"))
    if final and result.task == "reconstruction":
        rows.append(("train error", f"MSE {final['train_loss']:.5f}"))
        if final.get("val_loss") is not None:
            rows.append(("reconstruction error", f"MSE {final['val_loss']:.5f}, PSNR {final['val_psnr']:.1f} dB "
                                                 f"(validation; best epoch {result.best['epoch']})"))
    elif final:
        rows.append(("train accuracy", f"{final['train_accuracy']:.4f} (loss {final['train_loss']:.4f})"))
        if final.get("val_accuracy") is not None:
            rows.append(("val accuracy", f"{final['val_accuracy']:.4f} (best {result.best['val_accuracy']:.4f}, "
                                         f"epoch {result.best['epoch']})"))
    if final:
        seconds = sum(h["train_seconds"] for h in result.history)
        rows.append(("training time", f"{seconds:.1f} s, {sum(h['samples_per_second'] * h['train_seconds'] for h in result.history) / max(seconds, 1e-9):.0f} samples/s"))
    if result.cache_seconds is not None:
        on = f" on {runner.describe()}" if not runner.is_local else ""
        rows.append(("tensor cache", f"built in {result.cache_seconds:.1f} s{on}"))
    for note in result.notes:
        rows.append(("note", note))
    pictures = "reconstructions.png, " if result.task == "reconstruction" else ""
    rows.append(("output", f"{out} (best.pt, metrics.json, {pictures}tensorboard/)"))
    rows.append(("tensorboard", f"tensorboard --logdir {out / 'tensorboard'}"))
    model_name = "autoencoder" if result.task == "reconstruction" else f"{config.variant} NumberModel"
    ui.summary(f"trained {model_name}", rows)
