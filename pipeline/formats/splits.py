"""The split a path names: one table of split words and one rule, for every format reader and table.

Folder layouts name splits with folders (Roboflow's ``train/ valid/ test/``, Ultralytics'
``images/train/``, ImageFolder's ``train/<class>/``); annotation and table files with their
names (COCO's ``instances_val2017.json``, Hugging Face's ``data/train-00000-of-00001.parquet``,
Kaggle's ``fashion-mnist_test.csv``). `split_from_path` reads them all the same way, so a tree
gets the same splits whichever format reads it.

An explicit list beats the path: VOC's ``ImageSets/Main/<split>.txt`` and YOLO's ``data.yaml``
split entries are read by their formats before `split_from_path` is asked.
"""

from __future__ import annotations

import functools
import re

# Every word that names a split, case-folded, and the split it names.
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}

_WORD = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=4096)
def split_from_path(rel: str) -> str | None:
    """The split named by `rel`, a path relative to the import root (``/`` or the OS separator).

    The path is read as words (runs of the letters a-z, case-folded; digits and punctuation
    separate them), and the last split word wins: the innermost folder, or the file name, beats
    the folders above it. None when no word names a split. Readers pass only the part of the path
    that lays out splits: an image's folder, never the image's own name (``test_0001.jpg`` under
    ``train/`` is train), and for ImageFolder only the top folder (the ones below are classes).

    >>> split_from_path("train/images/a.jpg")
    'train'
    >>> split_from_path("test/train")  # two folders name splits: the innermost wins
    'train'
    >>> split_from_path("annotations/instances_val2017.json")  # the file name beats its folder
    'val'
    >>> split_from_path("data/train-00000-of-00001.parquet")
    'train'
    >>> split_from_path("Valid/labels")  # aliases and case: valid, validation, dev -> val
    'val'
    >>> split_from_path("contest/latest") is None  # whole words only
    True
    """
    for word in reversed(_WORD.findall(rel.casefold())):
        split = SPLIT_WORDS.get(word)
        if split is not None:
            return split
    return None
