"""Command-line arguments of the training stages, parsed by ``HfArgumentParser`` (Tevatron-style split).

``ModelArguments`` and ``LlaraTrainingArguments`` are shared by ``pretrain`` and ``finetune``; each stage
adds its own data/loss dataclass. ``LlaraTrainingArguments`` is HF's ``TrainingArguments`` (so torchrun,
``--deepspeed``, ``--bf16``, ``--gradient_checkpointing`` ... work unchanged) with safer defaults and
flags HF dropped or never had: ``--overwrite_output_dir``, ``--resume`` and ``--precision`` (the package's
precision policy, ``core/precision.py``: bf16 autocast wherever bf16 is native, unless told otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from llara_retrieval._utils.errors import LlaraError

PRECISIONS = ("auto", "float32")
LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="default",
        metadata={"help": "Model to adapt: 'default' (embedded gemma-3-270m), a hub id, HF dir, encoder dir, "
                          "spec file, GGUF file or PEFT adapter dir."})
    dtype: str = field(default="float32",
                       metadata={"help": "dtype the weights are loaded in (master weights); mixed precision "
                                         "is --precision / --bf16 / --fp16."})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "eager, sdpa, flash_attention_2 ... (default: the model's own choice)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run model code from the hub (off by default)."})
    lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of all parameters."})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(default=LORA_TARGETS,
                                     metadata={"help": "Comma-separated module names that get LoRA layers."})
    save_dtype: str | None = field(
        default=None, metadata={"help": "dtype the saved encoder dir pins (default: none, each machine loads it "
                                        "in its best precision; weights stored in bfloat16 after bf16 training)."})

    def __post_init__(self) -> None:
        if self.save_dtype is not None:  # checked now, not after the whole training run
            from llara_retrieval.core.precision import parse_dtype

            parse_dtype(self.save_dtype, "--save_dtype")


@dataclass
class LlaraTrainingArguments(TrainingArguments):
    overwrite_output_dir: bool = field(default=False,
                                       metadata={"help": "Allow writing into a non-empty output_dir."})
    resume: bool = field(default=False, metadata={"help": "Continue from the last checkpoint in output_dir "
                                                          "(same data order and optimizer state)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs (the reference recipes use 1)."})
    logging_steps: float = field(default=10, metadata={"help": "Log the loss components every N steps."})
    save_steps: float = field(default=500, metadata={"help": "Write a checkpoint every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep every collated field."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Trackers (default none)."})
    activation_checkpointing_kwargs: dict | str | None = field(
        default_factory=lambda: {"use_reentrant": False},
        metadata={"help": "Passed to torch.utils.checkpoint (non-reentrant works with frozen embeddings)."})

    precision: str = field(default="auto", metadata={
        "help": "auto: bf16 autocast over float32 weights where bf16 is native (CUDA GPUs with bf16, CPUs with "
                "AMX-BF16 / AVX-512-BF16), fp16 autocast on older GPUs, float32 elsewhere; float32: no autocast. "
                "--bf16 / --fp16 / a --deepspeed config win. Meant for float32 master weights (--dtype float32).",
        "choices": list(PRECISIONS)})

    def __post_init__(self) -> None:
        for flag in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, flag) < 1:  # HF would fail deep inside torch, after the model loaded
                raise LlaraError(f"--{flag} must be at least 1, not {getattr(self, flag)}")
        if self.precision not in PRECISIONS:
            raise LlaraError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        self.precision_pinned_by = self._apply_precision_policy()
        super().__post_init__()

    def _apply_precision_policy(self) -> str | None:
        """Set ``bf16``/``fp16`` as ``--precision auto`` says; returns what pinned the precision instead, if
        anything (``--bf16``/``--fp16``, ``--precision float32``, or a DeepSpeed config, whose precision
        HF checks against these flags)."""
        import torch
        from transformers.utils import is_torch_bf16_gpu_available

        from llara_retrieval.core.precision import training_autocast

        pinned = "--bf16" if self.bf16 else "--fp16" if self.fp16 else None
        if pinned is None and self.precision == "float32":
            pinned = "--precision float32"
        if pinned is None and self.deepspeed:
            pinned = "--deepspeed"
        if pinned is None:
            accelerator = None if self.use_cpu or not torch.accelerator.is_available() else \
                torch.accelerator.current_accelerator()
            mode = training_autocast(accelerator or torch.device("cpu"))
            self.bf16, self.fp16 = mode == "bf16", mode == "fp16"
        if self.bf16 and not self.use_cpu and not is_torch_bf16_gpu_available():
            self.use_cpu = True  # HF refuses bf16 without a bf16 accelerator unless told it runs on the CPU
        return pinned

    @property
    def autocast(self) -> str | None:
        """``"bf16"``, ``"fp16"`` or None: the mixed precision training runs in."""
        return "bf16" if self.bf16 else "fp16" if self.fp16 else None


@dataclass
class PretrainArguments:
    train_data: str = field(metadata={"help": "Reference JSONL {input, output_summarize, output_predict} (a file "
                                              "or a folder of *.jsonl); see `python -m llara_retrieval.train "
                                              "prepare`."})
    max_length: int = field(default=128, metadata={"help": "Token budget of the combined EBAE + EBAR sequence "
                                                           "(prompts included), as the reference (see "
                                                           "--length_budget)."})
    length_budget: str = field(default="combined", metadata={
        "help": "combined: --max_length covers prefix + text + both suffixes, as the reference's cutoff_len; "
                "branch: each branch alone, as the encoder's max length (longer texts).",
        "choices": ["combined", "branch"]})
    max_target_length: int | None = field(default=None, metadata={
        "help": "Tokens of each target text used (default --max_length less one for the BOS, as the reference)."})
    stopwords: str | None = field(default=None, metadata={
        "help": "Filter the target texts as the reference's --remove_stop_words (its recipe turns it on): "
                "punctuation becomes spaces, then words of the list are dropped; 'english' (NLTK's list) or "
                "a file with one word a line."})
    ebae_weight: float = field(default=0.05, metadata={"help": "Weight of the EBAE loss (reference 1/2/10)."})
    ebar_weight: float = field(default=0.05, metadata={"help": "Weight of the EBAR loss (reference 1/2/10)."})
    lm_weight: float = field(default=1.0, metadata={"help": "Weight of the next-token LM loss over the text "
                                                            "(0 skips its computation)."})
    lm_mean: str = field(default="token", metadata={
        "help": "token: the LM loss is the mean over the micro-batch's text tokens, as the reference; row: each "
                "text's mean, then the texts (every text weighs the same whatever its length).",
        "choices": ["token", "row"]})
    bow_weighting: str = field(default="reference", metadata={
        "help": "reference: a micro-batch where only one of EBAE/EBAR has targets gives that one both weights, "
                "as the reference (0.1); fixed: always --ebae_weight/--ebar_weight.",
        "choices": ["reference", "fixed"]})
    single_forward: bool = field(default=True, metadata={"help": "One forward with a 4-D mask for both tasks "
                                                                 "(falls back to two when the attention kernel "
                                                                 "cannot take a 4-D mask)."})
