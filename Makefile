# llara-retrieval: every command a user or CI needs. PY is the project's virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
DATA ?= $(SHARED)/data
ENCODER ?= encoders/llara-gemma3-270m.json

.PHONY: install test demo bench-encode bench-train clean

install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"

test:
	$(PY) -m pytest -q tests

demo:
	$(PY) -m llara_retrieval.beir --dataset $(DATA)/beir/scifact --encoder $(ENCODER) --output runs/demo --bm25 --hybrid --max-length 128

bench-encode:
	$(PY) benchmarks/bench_encode.py --corpus $(DATA)/beir/scifact/corpus.jsonl

bench-train:
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf build *.egg-info .pytest_cache
