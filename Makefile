# pipeline: every stage has a target. `make help` lists them.
# Two commands set up everything on a fresh machine: `make run` and `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIPELINE := $(VENV)/bin/pipeline
STAMP := $(VENV)/.installed

export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONDONTWRITEBYTECODE := 1

# --- knobs: point any stage at another dataset, run or config -------------
DATA ?= datasets/mnist-embedded
RUN ?= runs/mnist-embedded
CONFIG ?= configs/train/default.yaml
EPOCHS ?=
SPLIT ?= test
VAL ?= 0.1
TEST ?= 0.1
SEED ?= 0
FORMAT ?= auto
SRC ?=
OUT ?=
IMAGES ?=
RECIPE ?= configs/augment/digits.yaml
COPIES ?= 2
BENCH ?= quick

EPOCHS_OPT := $(if $(EPOCHS),--epochs $(EPOCHS),)

.PHONY: help venv run fetch import export split train validate predict augment preview check stats crop bench test fuzz lint clean

help: ## list the targets
	@echo "pipeline: staged commands from raw data to a trained NumberModel"
	@echo
	@echo "  make run       whole path on the embedded MNIST subset, offline (fetch → split → train → validate)"
	@echo "  make test      the test suite (creates .venv when missing)"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: DATA=$(DATA) RUN=$(RUN) CONFIG=$(CONFIG) SPLIT=$(SPLIT) FORMAT=$(FORMAT) SRC=… OUT=… IMAGES=… RECIPE=$(RECIPE) BENCH=$(BENCH)"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test,bench]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project (no-op when up to date)

run: $(STAMP) ## whole pipeline on the embedded data, offline
	$(PIPELINE) fetch mnist --embedded --out $(DATA)
	$(PIPELINE) split $(DATA) --val $(VAL) --seed $(SEED)
	$(PIPELINE) train $(DATA) --out $(RUN) --config $(CONFIG) $(EPOCHS_OPT)
	$(PIPELINE) validate $(RUN) --data $(DATA) --split test

fetch: $(STAMP) ## embedded MNIST subset into DATA (use `pipeline fetch --help` for other sources)
	$(PIPELINE) fetch mnist --embedded --out $(DATA)

import: $(STAMP) ## import SRC (FORMAT=auto|imagefolder|voc|yolo|createml|labelme|coco) into OUT
	@test -n "$(SRC)" -a -n "$(OUT)" || { echo "usage: make import SRC=path/to/labels OUT=datasets/name [FORMAT=auto]"; exit 2; }
	$(PIPELINE) import $(FORMAT) $(SRC) --out $(OUT)

export: $(STAMP) ## export DATA to OUT in FORMAT
	@test -n "$(OUT)" -a "$(FORMAT)" != auto || { echo "usage: make export DATA=datasets/name FORMAT=coco OUT=exports/name"; exit 2; }
	$(PIPELINE) export $(DATA) --format $(FORMAT) --out $(OUT)

split: $(STAMP) ## stratified, leak-free split of DATA (VAL, TEST fractions)
	$(PIPELINE) split $(DATA) --val $(VAL) --test $(TEST) --seed $(SEED)

train: $(STAMP) ## train NumberModel on DATA into RUN with CONFIG
	$(PIPELINE) train $(DATA) --out $(RUN) --config $(CONFIG) $(EPOCHS_OPT)

validate: $(STAMP) ## accuracy, per-class metrics and confusion matrix of RUN on DATA's SPLIT
	$(PIPELINE) validate $(RUN) --data $(DATA) --split $(SPLIT)

predict: $(STAMP) ## classify IMAGES with RUN
	@test -n "$(IMAGES)" || { echo "usage: make predict RUN=runs/name IMAGES='a.png b.jpg'"; exit 2; }
	$(PIPELINE) predict $(RUN) $(IMAGES)

augment: $(STAMP) ## write DATA plus COPIES augmented copies with RECIPE into OUT
	@test -n "$(OUT)" || { echo "usage: make augment DATA=datasets/name RECIPE=configs/augment/digits.yaml COPIES=2 OUT=datasets/name-aug"; exit 2; }
	$(PIPELINE) augment $(DATA) --recipe $(RECIPE) --copies $(COPIES) --out $(OUT) --seed $(SEED)

preview: $(STAMP) ## contact sheet of DATA's labels into OUT (a .png)
	@test -n "$(OUT)" || { echo "usage: make preview DATA=datasets/name OUT=preview.png"; exit 2; }
	$(PIPELINE) preview $(DATA) --out $(OUT)

check: $(STAMP) ## label checks on DATA
	$(PIPELINE) check $(DATA)

stats: $(STAMP) ## class/split counts and box sizes of DATA
	$(PIPELINE) stats $(DATA)

crop: $(STAMP) ## every labelled object of DATA as a classification sample in OUT
	@test -n "$(OUT)" || { echo "usage: make crop DATA=datasets/name OUT=datasets/name-crops"; exit 2; }
	$(PIPELINE) crop $(DATA) --out $(OUT)

bench: $(STAMP) ## benchmarks (BENCH=quick|full), results in benchmarks/results/
	BENCH=$(BENCH) $(PY) -m benchmarks.run

test: $(STAMP) ## the test suite
	$(PY) -m pytest -q -n 2 --dist loadfile

fuzz: $(STAMP) ## long fuzz run of every parser (HYPOTHESIS_PROFILE=long: 2,000 examples each)
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q -n 2 --dist load tests/formats/test_fuzz.py

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check pipeline tests benchmarks

clean: ## remove generated datasets, runs and caches (keeps .venv and the embedded data)
	find datasets -mindepth 1 -maxdepth 1 ! -name README.md ! -name embedded -exec rm -rf {} +
	rm -rf runs out .pytest_cache .ruff_cache
