# llara-retrieval: every command a user or CI needs. PY is the project's virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
DATA ?= $(SHARED)/data
ENCODER ?= encoders/llara-gemma3-270m.json

.PHONY: install test test-py312 demo reproduce bench-encode bench-train bench-finetune gpu-files clean

install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"

test:
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q tests

# The whole suite on Python 3.12 (Pyserini 2.x), in a venv kept outside the repo so reruns reuse it.
# There is no CPU torch wheel for 3.12 on this disk: PyPI's torch==2.13.0 is the CUDA build (about
# 4.7 GB with its nvidia-* wheels; `--no-deps` does not import: libcudnn.so.9 missing). It runs on the CPU.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python) \
             $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null))
VENV312 ?= $(HOME)/.cache/llara-retrieval/py312-venv
test-py312:
	@test -n "$(PYTHON312)" || { echo "test-py312: no Python 3.12 found (set PYTHON312=/path/to/python3.12)"; exit 1; }
	test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet --upgrade pip
	$(VENV312)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV312)/bin/python -m pip install --quiet -e ".[dev]"
	$(VENV312)/bin/lint-imports --no-cache
	$(VENV312)/bin/python -m pytest -q tests

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

bench-finetune:
	$(PY) benchmarks/bench_finetune.py --corpus $(DATA)/beir/scifact/corpus.jsonl

# What benchmarks/gpu_check.sh reads on a lent GPU machine (../shared does not travel there): carry .gpu
gpu-files:
	rm -rf .gpu && mkdir -p .gpu && cp -r --no-preserve=mode $(DATA)/tokenizers/llama2-llara .gpu/ && head -n 600 $(DATA)/beir/scifact/corpus.jsonl > .gpu/corpus.jsonl

clean:
	rm -rf build *.egg-info .pytest_cache
