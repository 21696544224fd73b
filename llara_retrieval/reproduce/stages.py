"""The reproduction plan: every stage of the LLaRA ablation as the exact command a user could type.

Each stage is a ``python -m llara_retrieval...`` command (so what is recorded is what ran) with the
stages it depends on; ``plan(config)`` lists them in run order. The evaluated systems are:

1. ``bm25``: Pyserini BM25;  2. ``zero-shot``: the base model with LLaRA prompts, untrained;
3. ``pretrain``: base -> EBAE + EBAR;  4. ``finetune-s<seed>``: base -> contrastive fine-tuning on mined negatives;
5. ``pretrain-finetune-s<seed>``: base -> pretrain -> finetune (same data and budget as 4 for the same seed);
6. ``hybrid``: BM25 fused with the dense run and linear weight that score best on the dev split.

Model selection never sees the test split: the ``split`` stage carves a seeded dev split out of the train
queries (``<output>/data/split/<dataset>/qrels/{fit,dev}.tsv``, the corpus and queries linked); negatives
are mined from the ``fit`` queries only; every dense system is evaluated on ``dev`` (for choices) and on
the test split (once, for the table).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from llara_retrieval.reproduce.config import ReproduceConfig
from llara_retrieval.retrieval.runs import encoder_name
from llara_retrieval.retrieval.splits import DEV, FIT

ZERO_SHOT, PRETRAIN, FINETUNE, PRETRAIN_FINETUNE = "zero-shot", "pretrain", "finetune", "pretrain-finetune"
SPLIT = "split"
UNFINISHED = "unfinished"  # state key, per stage: the time of attempts that did not finish, their command


@dataclass(frozen=True)
class Stage:
    name: str
    argv: tuple[str, ...]  # after "python -m"
    after: tuple[str, ...] = ()
    output: str | None = None  # a folder the stage owns (removed when the stage must start afresh)
    system: str | None = None  # the run system name this stage evaluates (in <output>/runs)
    split: str | None = None  # the qrels split it evaluates on (``dev`` or the eval split)
    encoder: str | None = None  # the encoder it evaluates (dense evaluation stages)
    row: str | None = None  # the report row whose wall time it counts in

    def command(self, python: str = "python") -> str:
        return shlex.join([python, "-m", *self.argv])


def models_dir(config: ReproduceConfig) -> Path:
    return Path(config.output) / "models"


def runs_dir(config: ReproduceConfig) -> Path:
    return Path(config.output) / "runs"


def data_dir(config: ReproduceConfig) -> Path:
    return Path(config.output) / "data"


def dataset_name(config: ReproduceConfig) -> str:
    """The dataset's folder name as ``llara-beir`` names its runs (a link resolved; a BEIR name as given)."""
    path = Path(config.dataset).expanduser()
    return path.resolve().name if path.is_dir() else path.name


def split_dataset(config: ReproduceConfig) -> Path:
    """The BEIR view with the ``fit`` and ``dev`` qrels, named like the dataset: its runs, BM25 index and
    corpus embeddings are then those of the dataset (same folder name, same corpus checksum)."""
    return data_dir(config) / "split" / dataset_name(config)


def seeded(system: str, seed: int, round_: int | None = None) -> str:
    """Name of a seeded fine-tuning system (and of its model folder); ``round_`` for an earlier round."""
    return f"{system}-s{seed}" + (f"-r{round_}" if round_ else "")


def _beir(config: ReproduceConfig, dataset: str, split: str, encoder: str | None, *extra: str) -> tuple[str, ...]:
    argv = ["llara_retrieval.beir", "--dataset", dataset, "--split", split, "--output", str(runs_dir(config))]
    if encoder is not None:
        argv += ["--encoder", encoder, "--max-length", str(config.passage_max_len),
                 "--query-max-length", str(config.query_max_len), "--batch-size", str(config.encode_batch_size)]
        argv += ["--device", config.device] if config.device else []
    argv += ["--cache-dir", config.cache_dir] if config.cache_dir else []
    return (*argv, *extra)


def _cache(config: ReproduceConfig) -> list[str]:
    return ["--cache_dir", config.cache_dir] if config.cache_dir else []


def _evaluations(config: ReproduceConfig, name: str, encoder: str, after: tuple[str, ...], row: str,
                 test: bool = True) -> list[Stage]:
    """Dev evaluation (for choices), then the one test evaluation (for the table) of a dense encoder (a model
    folder of this run is named like its stage; it need not exist yet)."""
    system = encoder_name(encoder) if encoder == config.model else Path(encoder).name
    stages = [Stage(f"{name}-dev", _beir(config, str(split_dataset(config)), DEV, encoder), after=(*after, SPLIT),
                    system=system, split=DEV, encoder=encoder, row=row)]
    if config.test and test:
        stages.append(Stage(f"{name}-eval", _beir(config, config.dataset, config.eval_split, encoder), after=after,
                            system=system, split=config.eval_split, encoder=encoder, row=row))
    return stages


def _lora(config: ReproduceConfig) -> list[str]:
    return ["--lora", "--lora_r", str(config.lora_r), "--lora_alpha", str(config.lora_alpha),
            "--lora_dropout", str(config.lora_dropout)]


def _training(config: ReproduceConfig, seed: int) -> list[str]:
    return ["--save_steps", str(config.save_steps), "--logging_steps", "1", "--seed", str(seed), "--resume"]


def _finetune(config: ReproduceConfig, start: str, data: Path, output: Path, seed: int) -> tuple[str, ...]:
    budget = (["--num_train_epochs", str(config.finetune_epochs)] if config.finetune_by_epochs
              else ["--max_steps", str(config.finetune_steps)])
    return ("llara_retrieval.train", "finetune", "--model_name_or_path", start, "--train_data", str(data),
            "--output_dir", str(output), *_lora(config), "--train_group_size", str(config.train_group_size),
            "--per_device_train_batch_size", str(config.finetune_batch_size),
            "--query_max_len", str(config.query_max_len), "--passage_max_len", str(config.passage_max_len),
            "--temperature", str(config.temperature), "--learning_rate", str(config.finetune_lr),
            *(["--grad_cache_chunk_size", str(config.grad_cache_chunk)] if config.grad_cache_chunk else []),
            "--lr_scheduler_type", config.lr_scheduler, "--warmup_steps", str(config.warmup_ratio), *budget,
            *_training(config, seed), *shlex.split(config.finetune_args))


def _mine(config: ReproduceConfig, output: Path, seed: int, encoder: str | None = None) -> tuple[str, ...]:
    argv = ["llara_retrieval.train", "mine", "--dataset", str(split_dataset(config)), "--split", FIT,
            "--output", str(output), "--depth", str(config.mine_depth), "--num_negatives", str(config.mine_negatives),
            "--seed", str(seed), "--overwrite", *_cache(config)]
    if encoder is not None:
        argv += ["--method", "dense", "--encoder", encoder, "--max_length", str(config.passage_max_len),
                 "--batch_size", str(config.encode_batch_size)]
        argv += ["--device", config.device] if config.device else []
    return tuple(argv)


def _seeded_system(config: ReproduceConfig, system: str, start: str, seed: int, start_stage: str | None,
                   row: str) -> list[Stage]:
    """One fine-tuned system for one seed: round 1 on BM25 negatives, each further round on negatives mined
    with the previous round's model (every round starts from ``start``: the same budget, harder negatives)."""
    models, data = models_dir(config), data_dir(config)
    stages, negatives, mined = [], data / f"negatives-bm25-s{seed}.jsonl", f"mine-s{seed}"
    rounds = config.negative_rounds
    for round_ in range(1, rounds + 1):
        name = seeded(system, seed, round_ if round_ < rounds else None)
        model = models / name
        after = (mined, *([start_stage] if start_stage else []))
        stages.append(Stage(name, _finetune(config, start, negatives, model, seed), after=after, output=str(model),
                            row=row))
        if round_ < rounds:  # an earlier round: dev only (for the ablation), then mine with it
            stages += _evaluations(config, name, str(model), (name,), row, test=False)
            negatives, mined = data / f"negatives-{seeded(system, seed, round_ + 1)}.jsonl", f"mine-{name}"
            stages.append(Stage(mined, _mine(config, negatives, seed, str(model)), after=(name, SPLIT), row=row))
        else:
            stages += _evaluations(config, name, str(model), (name,), row)
    return stages


def plan(config: ReproduceConfig) -> list[Stage]:
    """The stages in run order; ``hybrid`` is added at run time, once the dev split has chosen what to fuse."""
    models, data = models_dir(config), data_dir(config)
    pretrained, pretrain_data = models / PRETRAIN, data / "pretrain.jsonl"
    view = str(split_dataset(config))
    stages = [
        Stage(SPLIT, ("llara_retrieval.reproduce.split", "--dataset", config.dataset, "--split", config.train_split,
                      "--fraction", str(config.dev_fraction), "--seed", str(config.dev_seed), "--output", view,
                      *_cache(config)), output=view),
        Stage("bm25-dev", _beir(config, view, DEV, None, "--bm25"), after=(SPLIT,), system="bm25", split=DEV,
              row="1"),
    ]
    if config.test:
        stages.append(Stage("bm25", _beir(config, config.dataset, config.eval_split, None, "--bm25"), system="bm25",
                            split=config.eval_split, row="1"))
    stages += _evaluations(config, ZERO_SHOT, config.model, (), "2")
    stages += [
        Stage("pretrain-data", ("llara_retrieval.train", "prepare", "--input", *config.pretrain_text,
                                "--output", str(pretrain_data), "--tokenizer", config.model,
                                "--chunk_tokens", str(config.pretrain_chunk_tokens), "--overwrite"), row="3"),
        Stage(PRETRAIN, ("llara_retrieval.train", "pretrain", "--model_name_or_path", config.model,
                         "--train_data", str(pretrain_data), "--output_dir", str(pretrained), *_lora(config),
                         "--max_steps", str(config.pretrain_steps),
                         "--per_device_train_batch_size", str(config.pretrain_batch_size),
                         "--learning_rate", str(config.pretrain_lr), "--warmup_steps", "1",
                         "--max_length", str(config.pretrain_max_len), "--length_budget", "branch",
                         "--lm_weight", "0",
                         "--ebae_weight", "0.5", "--ebar_weight", "0.5", *_training(config, config.pretrain_seed),
                         *shlex.split(config.pretrain_args)),
              after=("pretrain-data",), output=str(pretrained), row="3"),
    ]
    stages += _evaluations(config, PRETRAIN, str(pretrained), (PRETRAIN,), "3")
    for seed in config.seeds:
        stages.append(Stage(f"mine-s{seed}", _mine(config, data / f"negatives-bm25-s{seed}.jsonl", seed),
                            after=(SPLIT,), row=config.systems[0]))  # the first fine-tuned row's time
        if "4" in config.systems:
            stages += _seeded_system(config, FINETUNE, config.model, seed, None, "4")
        if "5" in config.systems:
            stages += _seeded_system(config, PRETRAIN_FINETUNE, str(pretrained), seed, PRETRAIN, "5")
    return stages


def hybrid_stage(config: ReproduceConfig, encoder: str, weight: float, normalisation: str,
                 after: tuple[str, ...]) -> Stage:
    """RRF and linear fusion (dense weight ``weight`` of ``normalisation``-normalised scores) of BM25 with
    ``encoder`` on the test split (both runs' inputs are cached: only the fusion is new)."""
    return Stage("hybrid", _beir(config, config.dataset, config.eval_split, encoder, "--hybrid",
                                 "--hybrid-weight", f"{weight:g}", "--hybrid-normalisation", normalisation),
                 after=after, system=f"hybrid-rrf-{encoder_name(encoder)}", split=config.eval_split, encoder=encoder,
                 row="6")
