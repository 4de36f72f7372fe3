# pipeline: every stage has a target. `make help` lists them.
# Two commands set up everything on a fresh machine: `make run` and `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIPELINE := $(VENV)/bin/pipeline
STAMP := $(VENV)/.installed
# The Label Studio server the labeling-loop tests start: its own environment, because its pins
# (numpy, OpenCV) differ from ours. The SDK the tests drive it with lives there too.
LS_VENV ?= .venv-labelstudio
LS_VERSION ?= 1.23.2
LS_STAMP := $(LS_VENV)/.installed

export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONDONTWRITEBYTECODE := 1

# --- knobs: point any stage at another dataset, run or config -------------
# Every DATA may be a pipeline dataset or a curated ImageFolder tree (<class>/<image>): the stages
# import a tree once into the cache and re-import it only when its files change.
DATA ?= datasets/mnist-embedded
RUN ?= runs/mnist-embedded
CONFIG ?= configs/train/default.yaml
VARIANT ?=
AUGMENT ?=
EPOCHS ?=
SET ?=
SPLIT ?= test
VAL ?= 0.1
TEST ?= 0.1
SEED ?= 0
FORMAT ?= auto
SRC ?=
OUT ?=
IMAGES ?=
IMAGES_DIR ?=
FROM ?=
ISSUES ?=
RECIPE ?=
COPIES ?= 2
SPLITS ?= train
WORKERS ?= 1
REF ?=
COMPETITION ?=
FILE ?=
REPO ?=
REVISION ?=
INCLUDE ?=
URLS ?=
LIST ?=
LABEL ?=
URL ?=
DEPTH ?= 1
MAX_IMAGES ?= 100
GROUPS ?=
WIDTHS ?=
INPUT ?= 1x32x32
BENCH ?= quick
PORT ?= 8765
HOST ?= 127.0.0.1
VIEW_RUN ?=
NPROC ?=
SHARD_SIZE ?=
ENGINE ?=
ADDRESS ?=
FOLDS ?= 4
CONSENSUS_RUN ?=
THRESHOLD ?=
TOP ?=

AUGMENT_RECIPE := $(or $(RECIPE),configs/augment/digits.yaml)
EPOCHS_OPT := $(if $(EPOCHS),--epochs $(EPOCHS),)
TRAIN_OPTS := $(EPOCHS_OPT) $(if $(VARIANT),--variant $(VARIANT),) $(if $(AUGMENT),--augment $(AUGMENT),) \
	$(foreach kv,$(SET),--set $(kv))
# NPROC=N: N data-parallel processes on this machine under torchrun (docs/distributed.md)
TRAIN_LAUNCH = $(if $(NPROC),$(VENV)/bin/torchrun --standalone --nproc-per-node $(NPROC) -m pipeline,$(PIPELINE))
LABEL_OPT := $(if $(LABEL),--label '$(LABEL)',)
# augment, crop, import, train: where the per-sample work runs (ENGINE=ray: Ray workers; ADDRESS: a cluster's head)
ENGINE_OPTS := $(if $(ENGINE),--engine $(ENGINE),) $(if $(ADDRESS),--address $(ADDRESS),)
FETCH_OUT = $(or $(OUT),$(1))

.PHONY: help venv run fetch fetch-mnist fetch-kaggle fetch-hf fetch-url crawl import export split train validate \
	predict augment preview check stats crop label-issues consensus model view bench test fuzz lint clean \
	labelstudio-env browser prelabel relabel

help: ## list the targets
	@echo "pipeline: staged commands from raw data to a trained NumberModel"
	@echo
	@echo "  make run       whole path on the embedded MNIST subset, offline (fetch → split → train → validate)"
	@echo "  make test      the test suite (creates .venv when missing)"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-13s %s\n", $$1, $$2}'
	@echo
	@echo "Variables (defaults): DATA=$(DATA) RUN=$(RUN) CONFIG=$(CONFIG) SPLIT=$(SPLIT) VAL=$(VAL) TEST=$(TEST)"
	@echo "  SEED=$(SEED) FORMAT=$(FORMAT) COPIES=$(COPIES) SPLITS=$(SPLITS) WORKERS=$(WORKERS) DEPTH=$(DEPTH)"
	@echo "  MAX_IMAGES=$(MAX_IMAGES) INPUT=$(INPUT) BENCH=$(BENCH); RECIPE (augment: configs/augment/digits.yaml)"
	@echo "  Unset unless given: VARIANT AUGMENT EPOCHS SET SRC OUT IMAGES IMAGES_DIR REF COMPETITION FILE REPO REVISION"
	@echo "  INCLUDE URLS LIST LABEL URL GROUPS WIDTHS FROM ISSUES VIEW_RUN; view: PORT=$(PORT) HOST=$(HOST)"
	@echo "  NPROC=N (train: N data-parallel processes under torchrun); ENGINE=ray (augment, crop, import, train: the per-sample work"
	@echo "  on Ray workers) with ADDRESS=host:port of a Ray cluster (default: a local Ray)"
	@echo "DATA may be a dataset folder or an ImageFolder tree (<class>/<image>), imported once into the cache."

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test,bench]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project (no-op when up to date)

$(LS_STAMP): constraints-labelstudio.txt
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --disable-pip-version-check -q -c constraints-labelstudio.txt 'label-studio==$(LS_VERSION)'
	@touch $(LS_STAMP)

labelstudio-env: $(LS_STAMP) ## the Label Studio server and SDK the tests run against, in LS_VENV

browser: ## Debian's Chromium and chromedriver for the viewer's browser tests (installed when missing)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; }

run: $(STAMP) ## whole pipeline on the embedded data, offline
	$(PIPELINE) fetch mnist --embedded --out $(DATA)
	$(PIPELINE) split $(DATA) --val $(VAL) --seed $(SEED)
	$(PIPELINE) train $(DATA) --out $(RUN) --config $(CONFIG) $(EPOCHS_OPT)
	$(PIPELINE) validate $(RUN) --data $(DATA) --split test

fetch: $(STAMP) ## embedded MNIST subset (offline) into DATA
	$(PIPELINE) fetch mnist --embedded --out $(DATA)

fetch-mnist: $(STAMP) ## the real MNIST (70,000 images, verified) into OUT [datasets/mnist]
	$(PIPELINE) fetch mnist --out $(call FETCH_OUT,datasets/mnist)

fetch-kaggle: $(STAMP) ## Kaggle dataset REF=owner/slug (or COMPETITION=name) [FILE=] into OUT
	@test -n "$(REF)$(COMPETITION)" -a -n "$(OUT)" || { echo "usage: make fetch-kaggle REF=oddrationale/mnist-in-csv OUT=datasets/mnist-csv [FILE=train.csv] (or COMPETITION=digit-recognizer FILE=train.csv)"; exit 2; }
	$(PIPELINE) fetch kaggle $(if $(COMPETITION),--competition $(COMPETITION),$(REF)) $(if $(FILE),--file $(FILE),) --out $(OUT)

fetch-hf: $(STAMP) ## Hugging Face dataset REPO=owner/name [REVISION= INCLUDE=glob] into OUT
	@test -n "$(REPO)" -a -n "$(OUT)" || { echo "usage: make fetch-hf REPO=ylecun/mnist OUT=datasets/mnist-hf [REVISION=main] [INCLUDE='*/train-*.parquet']"; exit 2; }
	$(PIPELINE) fetch hf $(REPO) $(if $(REVISION),--revision $(REVISION),) $(if $(INCLUDE),--include '$(INCLUDE)',) --out $(OUT)

fetch-url: $(STAMP) ## download URLS='a b' (or LIST=file) [LABEL=] and import them into OUT
	@test -n "$(URLS)$(LIST)" -a -n "$(OUT)" || { echo "usage: make fetch-url URLS='https://example.org/digits.zip' OUT=datasets/digits [LIST=urls.txt] [LABEL=cat]"; exit 2; }
	$(PIPELINE) fetch url $(URLS) $(if $(LIST),--list $(LIST),) $(LABEL_OPT) --out $(OUT)

crawl: $(STAMP) ## collect images from URL [DEPTH MAX_IMAGES LABEL] into OUT
	@test -n "$(URL)" -a -n "$(OUT)" || { echo "usage: make crawl URL=https://example.org/gallery OUT=datasets/web [DEPTH=1] [MAX_IMAGES=100] [LABEL=cat]"; exit 2; }
	$(PIPELINE) crawl $(URL) --depth $(DEPTH) --max-images $(MAX_IMAGES) $(LABEL_OPT) --out $(OUT)

import: $(STAMP) ## import SRC (FORMAT=auto|imagefolder|voc|yolo|createml|labelme|coco|cvat|labelstudio|webdataset|images) into OUT [IMAGES_DIR=folder of the images WORKERS=processes reading a large COCO file ENGINE ADDRESS]
	@test -n "$(SRC)" -a -n "$(OUT)" || { echo "usage: make import SRC=path/to/labels OUT=datasets/name [FORMAT=auto] [WORKERS=2] [ENGINE=ray [ADDRESS=host:port]]"; exit 2; }
	$(PIPELINE) import $(FORMAT) $(SRC) --out $(OUT) $(if $(IMAGES_DIR),--images $(IMAGES_DIR),) $(if $(filter command line environment,$(origin WORKERS)),--workers $(WORKERS) ,)$(ENGINE_OPTS)

export: $(STAMP) ## export DATA to OUT in FORMAT [SHARD_SIZE=samples per shard, FORMAT=webdataset]
	@test -n "$(OUT)" -a "$(FORMAT)" != auto || { echo "usage: make export DATA=datasets/name FORMAT=coco OUT=exports/name"; exit 2; }
	$(PIPELINE) export $(DATA) --format $(FORMAT) --out $(OUT) $(if $(SHARD_SIZE),--shard-size $(SHARD_SIZE),)

split: $(STAMP) ## stratified, leak-free split of DATA (VAL, TEST fractions, SEED)
	$(PIPELINE) split $(DATA) --val $(VAL) --test $(TEST) --seed $(SEED)

train: $(STAMP) ## train on DATA into RUN with CONFIG [VARIANT=autoencoder|grouped|... AUGMENT=recipe EPOCHS SET='groups=4 …' NPROC=2: torchrun, data-parallel; DATA may be a folder of WebDataset shards; ENGINE ADDRESS]
	$(TRAIN_LAUNCH) train $(DATA) --out $(RUN) --config $(CONFIG) $(TRAIN_OPTS) $(ENGINE_OPTS)

validate: $(STAMP) ## accuracy and confusion matrix (autoencoder: reconstruction error) of RUN on DATA's SPLIT
	$(PIPELINE) validate $(RUN) --data $(DATA) --split $(SPLIT)

predict: $(STAMP) ## classify IMAGES with RUN (autoencoder: reconstructions into OUT)
	@test -n "$(IMAGES)" || { echo "usage: make predict RUN=runs/name IMAGES='a.png b.jpg' [OUT=reconstructions/]"; exit 2; }
	$(PIPELINE) predict $(RUN) $(IMAGES) $(if $(OUT),--out $(OUT),)

augment: $(STAMP) ## DATA plus COPIES augmented copies of SPLITS with RECIPE into OUT [WORKERS SEED ENGINE ADDRESS]
	@test -n "$(OUT)" || { echo "usage: make augment DATA=datasets/name OUT=datasets/name-aug [RECIPE=configs/augment/digits.yaml] [COPIES=2] [SPLITS=train] [WORKERS=1] [ENGINE=ray [ADDRESS=host:port]]"; exit 2; }
	$(PIPELINE) augment $(DATA) --recipe $(AUGMENT_RECIPE) --copies $(COPIES) --splits $(SPLITS) \
		--workers $(WORKERS) --out $(OUT) --seed $(SEED) $(ENGINE_OPTS)

preview: $(STAMP) ## contact sheet of DATA's labels into OUT (a .png) [RECIPE: augmented previews]
	@test -n "$(OUT)" || { echo "usage: make preview DATA=datasets/name OUT=preview.png [RECIPE=configs/augment/digits.yaml]"; exit 2; }
	$(PIPELINE) preview $(DATA) --out $(OUT) $(if $(RECIPE),--recipe $(RECIPE),)

check: $(STAMP) ## label checks on DATA
	$(PIPELINE) check $(DATA)

stats: $(STAMP) ## class/split counts and box sizes of DATA
	$(PIPELINE) stats $(DATA)

prelabel: $(STAMP) ## RUN's predictions on DATA as pre-annotations for FORMAT=labelstudio|labelme|cvat into OUT [ISSUES=label-issues folder]
	@test -n "$(OUT)" -a "$(FORMAT)" != auto || { echo "usage: make prelabel RUN=runs/name DATA=datasets/name FORMAT=labelstudio OUT=review [ISSUES=issues/]"; exit 2; }
	$(PIPELINE) prelabel $(RUN) $(DATA) --format $(FORMAT) --out $(OUT) $(if $(ISSUES),--issues $(ISSUES),)

relabel: $(STAMP) ## new version of DATA with the reviewed labels of FROM (Label Studio/labelme/CVAT/edits) into OUT [IMAGES_DIR]
	@test -n "$(FROM)" -a -n "$(OUT)" || { echo "usage: make relabel DATA=datasets/name FROM=review/export.json OUT=datasets/name-v2 [FORMAT=auto] [IMAGES_DIR=review]"; exit 2; }
	$(PIPELINE) relabel $(DATA) --from $(FROM) --out $(OUT) --format $(FORMAT) $(if $(IMAGES_DIR),--images $(IMAGES_DIR),)

view: $(STAMP) ## browse DATA in the browser and fix labels (PORT, HOST) [ISSUES=label-issues folder VIEW_RUN=run]
	$(PIPELINE) view $(DATA) --port $(PORT) --host $(HOST) $(if $(ISSUES),--issues $(ISSUES),) \
		$(if $(VIEW_RUN),--run $(VIEW_RUN),)

crop: $(STAMP) ## every labelled object of DATA as a classification sample in OUT [ENGINE ADDRESS]
	@test -n "$(OUT)" || { echo "usage: make crop DATA=datasets/name OUT=datasets/name-crops [ENGINE=ray [ADDRESS=host:port]]"; exit 2; }
	$(PIPELINE) crop $(DATA) --out $(OUT) $(ENGINE_OPTS)

label-issues: $(STAMP) ## likely label errors, near-duplicates, outliers of DATA into OUT [FOLDS EPOCHS THRESHOLD TOP CONFIG]
	@test -n "$(OUT)" || { echo "usage: make label-issues DATA=datasets/name OUT=reports/name-issues [FOLDS=4] [EPOCHS=] [THRESHOLD=0.05] [TOP=100]"; exit 2; }
	$(PIPELINE) label-issues $(DATA) --out $(OUT) --folds $(FOLDS) --config $(CONFIG) $(EPOCHS_OPT) \
		$(if $(THRESHOLD),--threshold $(THRESHOLD),) $(if $(TOP),--top $(TOP),)

consensus: $(STAMP) ## consensus labels and annotator quality of DATA (several annotators) into OUT [CONSENSUS_RUN=label-issues folder or run]
	@test -n "$(OUT)" || { echo "usage: make consensus DATA=datasets/votes OUT=datasets/agreed [RUN=reports/votes-issues]"; exit 2; }
	$(PIPELINE) consensus $(DATA) --out $(OUT) $(if $(CONSENSUS_RUN),--run $(CONSENSUS_RUN),)

model: $(STAMP) ## layers, parameters and MACs of VARIANT (all: one line each) [GROUPS WIDTHS INPUT]
	$(PIPELINE) model summary --variant $(or $(VARIANT),all) --input $(INPUT) \
		$(if $(GROUPS),--groups $(GROUPS),) $(if $(WIDTHS),--widths $(WIDTHS),)

bench: $(STAMP) ## benchmarks (BENCH=quick|full), results in benchmarks/results/
	BENCH=$(BENCH) $(PY) -m benchmarks.run

test: $(STAMP) $(LS_STAMP) browser ## the test suite
	$(PY) -m pytest -q -n 2 --dist loadfile

fuzz: $(STAMP) ## long fuzz run of every parser (HYPOTHESIS_PROFILE=long: 2,000 examples each)
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q -n 2 --dist load tests/formats/test_fuzz.py

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check pipeline tests benchmarks

clean: ## remove generated datasets, runs and caches (keeps .venv and the embedded data)
	find datasets -mindepth 1 -maxdepth 1 ! -name README.md ! -name embedded -exec rm -rf {} +
	rm -rf runs out .pytest_cache .ruff_cache
