"""``ReproduceConfig``: every knob of ``make reproduce``, each one a flag of ``python -m llara_retrieval.reproduce``
and a line of the report's settings.

The recipe's levers (passage length, epochs, group size, temperature, learning-rate schedule, rounds of
mined negatives, pretraining budget and text) change budgets, never the method; which values help is
measured on the dev split (see ``docs/reproduction.md``), never on the test split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.retrieval.fusion import NORMALISATIONS

DEFAULT_SEEDS = (42, 43, 44)
FINE_TUNED_ROWS = ("4", "5")  # the table's fine-tuned systems: base -> finetune, base -> pretrain -> finetune
DEFAULT_HYBRID_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
LR_SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")
# settings that change where or how a run is kept, never what it measures (left out of ablation diffs)
BOOKKEEPING = ("output", "cache_dir", "device", "compare", "save_steps", "encode_batch_size", "grad_cache_chunk",
               "test", "until")


def _check_choices(flag: str, values: list[str], allowed: tuple[str, ...]) -> None:
    """A list flag must name at least one of ``allowed``, each at most once."""
    if not values or len(set(values)) != len(values) or set(values) - set(allowed):
        raise LlaraError(f"{flag} must list distinct values among {' '.join(allowed)}, got {values}")


@dataclass(kw_only=True)
class ReproduceConfig:
    """Knobs of ``make reproduce``. The data paths have no default: the Makefile names them.

    The defaults are the recipe for the embedded gemma-3-270m model sized to finish within 3 hours on a 2-core
    bf16-native CPU: eight corpus encodes (systems 2, 3 and three seeds each of 4 and 5) dominate the time, so
    passages are cut to 128 tokens with the prompt (at 256 each encode takes about twice as long: about 5 hours
    for the whole table there); fine-tuning is 24 steps of 8 queries, each with its positive and 3 mined negatives
    (``--finetune-epochs`` > 0 trains whole epochs instead). GradCache (chunks of 16 sequences: the same
    gradients as the whole batch) bounds a step's memory for longer passages and larger groups.
    """

    dataset: str
    pretrain_text: list[str]
    model: str = "default"  # the embedded gemma-3-270m with LLaRA prompts; the Makefile passes its spec file
    output: str = "runs/reproduce"
    train_split: str = "train"
    eval_split: str = "test"
    test: bool = True
    dev_fraction: float = 0.1
    dev_seed: int = 13
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    systems: list[str] = field(default_factory=lambda: list(FINE_TUNED_ROWS))
    query_max_len: int = 64
    passage_max_len: int = 128
    encode_batch_size: int = 32
    pretrain_max_len: int = 64
    pretrain_chunk_tokens: int = 64
    pretrain_steps: int = 40
    pretrain_batch_size: int = 8
    pretrain_lr: float = 5e-4
    pretrain_seed: int = 42
    mine_depth: int = 100
    mine_negatives: int = 15
    negative_rounds: int = 1
    finetune_steps: int = 24
    finetune_epochs: float = 0.0
    finetune_batch_size: int = 8
    train_group_size: int = 4
    finetune_lr: float = 1e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.1
    temperature: float = 0.01
    grad_cache_chunk: int = 16
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    save_steps: int = 10
    hybrid_weights: list[float] = field(default_factory=lambda: list(DEFAULT_HYBRID_WEIGHTS))
    hybrid_normalisations: list[str] = field(default_factory=lambda: list(NORMALISATIONS))
    permutation_rounds: int = 10_000
    stats_seed: int = 0
    compare: list[str] = field(default_factory=list)
    until: str | None = None
    device: str | None = None
    cache_dir: str | None = None
    pretrain_args: str = ""
    finetune_args: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.dev_fraction < 1.0:
            raise LlaraError(f"--dev-fraction must be in (0, 1), not {self.dev_fraction}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise LlaraError(f"--seeds must list distinct seeds, got {self.seeds}")
        _check_choices("--systems", self.systems, FINE_TUNED_ROWS)
        self.systems = [row for row in FINE_TUNED_ROWS if row in self.systems]  # '5 4' is the same run as '4 5'
        if self.negative_rounds < 1:
            raise LlaraError(f"--negative-rounds must be at least 1, not {self.negative_rounds}")
        if self.finetune_steps <= 0 and self.finetune_epochs <= 0:
            raise LlaraError("fine-tuning needs --finetune-epochs > 0 or --finetune-steps > 0")
        if self.lr_scheduler not in LR_SCHEDULES:
            raise LlaraError(f"--lr-scheduler must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_scheduler!r}")
        if not self.hybrid_weights or any(not 0.0 <= w <= 1.0 for w in self.hybrid_weights):
            raise LlaraError(f"--hybrid-weights must be dense weights in [0, 1], got {self.hybrid_weights}")
        _check_choices("--hybrid-normalisations", self.hybrid_normalisations, tuple(NORMALISATIONS))
        if self.train_split == self.eval_split:
            raise LlaraError(f"--train-split and --eval-split are both {self.train_split!r}: the dev split and the "
                             "fine-tuning data would be carved from the queries the table is evaluated on")
        if not 0.0 <= self.warmup_ratio < 1.0:  # passed as --warmup_steps, which reads a float below 1 as a ratio
            raise LlaraError(f"--warmup-ratio must be in [0, 1), not {self.warmup_ratio}")
        if self.grad_cache_chunk < 0:
            raise LlaraError(f"--grad-cache-chunk must be 0 (off) or positive, not {self.grad_cache_chunk}")
        if self.permutation_rounds < 1:
            raise LlaraError("--permutation-rounds must be at least 1")

    @property
    def finetune_by_epochs(self) -> bool:
        """Whether fine-tuning runs ``finetune_epochs`` epochs (> 0) rather than ``finetune_steps`` steps."""
        return self.finetune_epochs > 0

    def to_dict(self) -> dict:
        return asdict(self)
