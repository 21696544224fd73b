# llara-retrieval: every command a user or CI needs. PY is the project's virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
DATA ?= $(SHARED)/data
ENCODER ?= encoders/llara-gemma3-270m.json

.PHONY: install test demo reproduce bench-encode bench-train clean

install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"

test:
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q tests

demo:
	$(PY) -m llara_retrieval.beir --dataset $(DATA)/beir/scifact --encoder $(ENCODER) --output runs/demo --bm25 --hybrid --max-length 128

# The LLaRA ablation; knobs: REPRO_MODEL, REPRO_OUT, REPRO_ARGS (any `python -m llara_retrieval.reproduce` flag).
REPRO_MODEL ?= $(ENCODER)
REPRO_OUT ?= runs/reproduce
REPRO_ARGS ?=
reproduce:
	$(PY) -m llara_retrieval.reproduce --model $(REPRO_MODEL) --dataset $(DATA)/beir/scifact \
		--pretrain-text $(DATA)/text/scifact_sentence_pairs.jsonl --output $(REPRO_OUT) $(REPRO_ARGS)

bench-encode:
	$(PY) benchmarks/bench_encode.py --corpus $(DATA)/beir/scifact/corpus.jsonl

bench-train:
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf build *.egg-info .pytest_cache
