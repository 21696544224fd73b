"""The reproduction plan: every stage of the LLaRA ablation as the exact command a user could type.

Each stage is a ``python -m llara_retrieval...`` command (so what is recorded is what ran) with the
stages it depends on; ``plan(config)`` lists them in run order. The evaluated systems are:

1. ``bm25``: Pyserini BM25;  2. ``zero-shot``: the base model with LLaRA prompts, untrained;
3. ``pretrain``: base -> EBAE + EBAR;  4. ``finetune``: base -> contrastive fine-tuning on BM25 negatives;
5. ``pretrain-finetune``: base -> pretrain -> finetune (same budget as 4);
6. ``hybrid``: BM25 fused with the best dense run (RRF and min-max linear).
"""
from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from llara_retrieval.retrieval.runs import encoder_name


@dataclass(kw_only=True)
class ReproduceConfig:
    """Knobs of ``make reproduce``; the defaults fit the embedded model on a 2-core CPU in under 3 hours.
    The data paths have no default: the Makefile names them."""

    dataset: str
    pretrain_text: list[str]
    model: str = "encoders/llara-gemma3-270m.json"
    output: str = "runs/reproduce"
    train_split: str = "train"
    eval_split: str = "test"
    query_max_len: int = 64
    passage_max_len: int = 128
    encode_batch_size: int = 32
    pretrain_max_len: int = 64
    pretrain_chunk_tokens: int = 64
    pretrain_steps: int = 40
    pretrain_batch_size: int = 8
    pretrain_lr: float = 5e-4
    mine_depth: int = 100
    mine_negatives: int = 15
    finetune_steps: int = 30
    finetune_batch_size: int = 8
    train_group_size: int = 4
    finetune_lr: float = 1e-4
    temperature: float = 0.01
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    save_steps: int = 10
    seed: int = 42
    device: str | None = None
    cache_dir: str | None = None
    pretrain_args: str = ""
    finetune_args: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Stage:
    name: str
    argv: tuple[str, ...]  # after "python -m"
    after: tuple[str, ...] = ()
    output: str | None = None  # a folder the stage owns (removed when the stage must start afresh)
    system: str | None = None  # the run system name this stage evaluates (in <output>/runs)

    def command(self, python: str = "python") -> str:
        return shlex.join([python, "-m", *self.argv])


ZERO_SHOT, PRETRAIN, FINETUNE, PRETRAIN_FINETUNE = "zero-shot", "pretrain", "finetune", "pretrain-finetune"
DENSE_STAGES = (ZERO_SHOT, f"{PRETRAIN}-eval", f"{FINETUNE}-eval", f"{PRETRAIN_FINETUNE}-eval")


def models_dir(config: ReproduceConfig) -> Path:
    return Path(config.output) / "models"


def runs_dir(config: ReproduceConfig) -> Path:
    return Path(config.output) / "runs"


def _beir(config: ReproduceConfig, encoder: str | None, *extra: str) -> tuple[str, ...]:
    argv = ["llara_retrieval.beir", "--dataset", config.dataset, "--split", config.eval_split,
            "--output", str(runs_dir(config))]
    if encoder is not None:
        argv += ["--encoder", encoder, "--max-length", str(config.passage_max_len),
                 "--query-max-length", str(config.query_max_len), "--batch-size", str(config.encode_batch_size)]
        argv += ["--device", config.device] if config.device else []
    argv += ["--cache-dir", config.cache_dir] if config.cache_dir else []
    return (*argv, *extra)


def _lora(config: ReproduceConfig) -> list[str]:
    return ["--lora", "--lora_r", str(config.lora_r), "--lora_alpha", str(config.lora_alpha),
            "--lora_dropout", str(config.lora_dropout)]


def _training(config: ReproduceConfig) -> list[str]:
    return ["--save_steps", str(config.save_steps), "--logging_steps", "1", "--seed", str(config.seed), "--resume"]


def _finetune(config: ReproduceConfig, start: str, output: Path) -> tuple[str, ...]:
    return ("llara_retrieval.train", "finetune", "--model_name_or_path", start,
            "--train_data", str(Path(config.output) / "data" / "finetune.jsonl"), "--output_dir", str(output),
            *_lora(config), "--train_group_size", str(config.train_group_size),
            "--per_device_train_batch_size", str(config.finetune_batch_size),
            "--query_max_len", str(config.query_max_len), "--passage_max_len", str(config.passage_max_len),
            "--temperature", str(config.temperature), "--learning_rate", str(config.finetune_lr),
            "--max_steps", str(config.finetune_steps), *_training(config), *shlex.split(config.finetune_args))


def plan(config: ReproduceConfig) -> list[Stage]:
    """The stages in run order; ``hybrid`` is completed at run time with the best dense encoder."""
    models, data = models_dir(config), Path(config.output) / "data"
    pretrained, finetuned, both = models / PRETRAIN, models / FINETUNE, models / PRETRAIN_FINETUNE
    pretrain_data = data / "pretrain.jsonl"
    return [
        Stage("bm25", _beir(config, None, "--bm25"), system="bm25"),
        Stage(ZERO_SHOT, _beir(config, config.model), system=encoder_name(config.model)),
        Stage("pretrain-data", ("llara_retrieval.train", "prepare", "--input", *config.pretrain_text,
                                "--output", str(pretrain_data), "--tokenizer", config.model,
                                "--chunk_tokens", str(config.pretrain_chunk_tokens), "--overwrite")),
        Stage(PRETRAIN, ("llara_retrieval.train", "pretrain", "--model_name_or_path", config.model,
                         "--train_data", str(pretrain_data), "--output_dir", str(pretrained), *_lora(config),
                         "--max_steps", str(config.pretrain_steps),
                         "--per_device_train_batch_size", str(config.pretrain_batch_size),
                         "--learning_rate", str(config.pretrain_lr), "--warmup_steps", "1",
                         "--max_length", str(config.pretrain_max_len), "--lm_weight", "0",
                         "--ebae_weight", "0.5", "--ebar_weight", "0.5", *_training(config),
                         *shlex.split(config.pretrain_args)),
              after=("pretrain-data",), output=str(pretrained)),
        Stage(f"{PRETRAIN}-eval", _beir(config, str(pretrained)), after=(PRETRAIN,), system=PRETRAIN),
        Stage("mine", ("llara_retrieval.train", "mine", "--dataset", config.dataset, "--split", config.train_split,
                       "--output", str(data / "finetune.jsonl"), "--depth", str(config.mine_depth),
                       "--num_negatives", str(config.mine_negatives), "--seed", str(config.seed), "--overwrite",
                       *(["--cache_dir", config.cache_dir] if config.cache_dir else []))),
        Stage(FINETUNE, _finetune(config, config.model, finetuned), after=("mine",), output=str(finetuned)),
        Stage(f"{FINETUNE}-eval", _beir(config, str(finetuned)), after=(FINETUNE,), system=FINETUNE),
        Stage(PRETRAIN_FINETUNE, _finetune(config, str(pretrained), both), after=("mine", PRETRAIN),
              output=str(both)),
        Stage(f"{PRETRAIN_FINETUNE}-eval", _beir(config, str(both)), after=(PRETRAIN_FINETUNE,),
              system=PRETRAIN_FINETUNE),
    ]


def hybrid_stage(config: ReproduceConfig, best_encoder: str) -> Stage:
    """RRF and linear fusion of BM25 with ``best_encoder`` (its embeddings are cached: only fusion is new)."""
    return Stage("hybrid", _beir(config, best_encoder, "--hybrid"), after=DENSE_STAGES,
                 system=f"hybrid-rrf-{encoder_name(best_encoder)}")
