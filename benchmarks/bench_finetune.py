"""Fine-tuning step time, tokens/s and peak memory of ``python -m llara_retrieval.train finetune``, per precision.

Runs the real trainer (``llara_retrieval.train.finetune.train.main``, the CLI's own function) once per mode, each in
its own subprocess (so peak memory is its own), on a synthetic training file whose queries and passages are
all longer than their budgets, so every step has the same shape: ``--batch`` queries × ``--group`` passages,
``--query-max-len`` / ``--passage-max-len`` tokens (the padded token count per step is taken from the
package's own collator). A callback times ``--warmup`` + ``--steps`` optimizer steps (synchronised on CUDA)
and reports the median of the timed ones, the peak memory above what was resident after the warm-up (CUDA:
the allocator; CPU: VmHWM above VmRSS) and the first step's loss; it stops the run after its last step,
before the trainer writes anything (a 7B merge would cost more than the steps).

Modes: ``float32`` (``--precision float32``) and ``bf16`` (``--bf16``: bf16 autocast over float32 master
weights, what ``--precision auto`` picks where bf16 is native; on a CPU without native bf16 it is emulated
and slow). ``--lora`` and ``--gradient-checkpointing`` pass through, as does ``--dtype`` for the master
weights (``bfloat16`` for a 7B LoRA run on one GPU), ``--lora-r`` / ``--lora-alpha`` / ``--lora-dropout``
(default ``make reproduce``'s 16 / 32 / 0.05) and ``--grad-cache-chunk``: ``make reproduce``'s fine-tuning step is
``--lora --batch 8 --group 4 --query-max-len 64 --passage-max-len 128 --grad-cache-chunk 16`` (its 256-token
recipe's: ``--group 8 --passage-max-len 256``).

    python benchmarks/bench_finetune.py --corpus ../shared/data/beir/scifact/corpus.jsonl \\
        [--model default] [--modes float32 bf16] [--batch 4 --group 4] [--device cpu|cuda] [--lora] \\
        [--lora-r 16 --lora-alpha 32 --lora-dropout 0.05] [--grad-cache-chunk 16] ...
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench_encode import prompt_tokenizer_for
from bench_train import PLAIN_MALLOC_HELP, Memory, child_env

ROOT = Path(__file__).resolve().parents[1]
if TYPE_CHECKING:
    from transformers import TrainerCallback

MODES = {"float32": ["--precision", "float32"], "bf16": ["--bf16"]}


class Measured(Exception):
    """Raised after the last timed step: the benchmark needs neither the loss plot nor the trained encoder."""


def step_timer(warmup: int, steps: int, device: str) -> TrainerCallback:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.memory, self.times, self.losses, self.start, self.base = Memory(device), [], [], 0.0, None

        def on_step_begin(self, args, state, control, **kwargs):
            self.memory.sync()
            if state.global_step == warmup:  # weights, optimizer state and buffers are now resident
                self.base = self.memory.resident()
                self.memory.reset_peak()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.memory.sync()
            if state.global_step > warmup:
                self.times.append(time.perf_counter() - self.start)

        def on_log(self, args, state, control, logs=None, **kwargs):  # runs after on_step_end: the loss is logged
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])
                if state.global_step == warmup + steps:
                    raise Measured()

    return StepTimer()


def write_train_data(corpus: str, path: Path, queries: int, group: int, min_words: int) -> None:
    """``queries`` records whose query and passages each join corpus texts up to ``min_words`` words."""
    texts = [json.loads(line)["text"] for line in Path(corpus).read_text(encoding="utf-8").splitlines()[:2000]]
    if not texts:
        raise SystemExit(f"bench_finetune: {corpus}: no passages")
    long_texts, pos = [], 0
    while len(long_texts) < queries * (group + 1):
        words: list[str] = []
        while len(words) < min_words:
            words += texts[pos % len(texts)].split()
            pos += 1
        long_texts.append(" ".join(words))
    with path.open("w", encoding="utf-8") as out:
        for i in range(queries):
            chunk = long_texts[i * (group + 1):(i + 1) * (group + 1)]
            out.write(json.dumps({"query": chunk[0], "pos": [chunk[1]], "neg": chunk[2:]}) + "\n")


def child(args: argparse.Namespace) -> None:
    from llara_retrieval.train.finetune.train import main

    timer = step_timer(args.warmup, args.steps, args.device)
    argv = ["--model_name_or_path", args.model, "--train_data", args.data, "--output_dir", args.output,
            "--overwrite_output_dir", "--train_group_size", str(args.group), "--query_max_len", str(args.query_max_len),
            "--passage_max_len", str(args.passage_max_len), "--per_device_train_batch_size", str(args.batch),
            "--max_steps", str(args.warmup + args.steps), "--learning_rate", "1e-5", "--logging_steps", "1",
            "--save_strategy", "no", "--report_to", "none", "--dtype", args.dtype, *MODES[args.mode],
            "--lora_r", str(args.lora_r), "--lora_alpha", str(args.lora_alpha),
            "--lora_dropout", str(args.lora_dropout), "--grad_cache_chunk_size", str(args.grad_cache_chunk),
            *(["--use_cpu"] if args.device == "cpu" else []),
            *switches(args, "_")]
    try:
        status = main(argv, callbacks=[timer])
        raise SystemExit(f"bench_finetune: the trainer returned {status} before its last timed step")
    except Measured:
        pass
    print(json.dumps({"mode": args.mode, "step_s": statistics.median(timer.times),
                      "loss": timer.losses[0], "peak_mb": timer.memory.peak() - timer.base, "resident_mb": timer.base}))


def switches(args: argparse.Namespace, sep: str) -> list[str]:
    """``--lora`` / ``--gradient{sep}checkpointing`` as given (the trainer spells flags with ``_``, this script
    with ``-``)."""
    return [*(["--lora"] if args.lora else []),
            *([f"--gradient{sep}checkpointing"] if args.gradient_checkpointing else [])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="JSONL of {'text'} passages to build the training texts from")
    parser.add_argument("--model", default="default", help="encoder spec or model (default: the embedded gemma-3-270m)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--batch", type=int, default=4, help="queries per step")
    parser.add_argument("--group", type=int, default=4, help="passages per query (1 positive + negatives)")
    parser.add_argument("--query-max-len", type=int, default=32)
    parser.add_argument("--passage-max-len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="master weights")
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--grad-cache-chunk", type=int, default=0, help="GradCache chunk size (0: off)")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (make reproduce's 16)")
    parser.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (make reproduce's 32)")
    parser.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (make reproduce's 0.05)")
    parser.add_argument("--plain-malloc", action="store_true", help=PLAIN_MALLOC_HELP)
    parser.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        child(args)
        return 0
    if args.steps < 1:
        raise SystemExit("bench_finetune: --steps must be at least 1")
    import torch

    from llara_retrieval.core.precision import cpu_description
    from llara_retrieval.train.finetune.data import GroupCollator, GroupDataset, read_train_data

    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        data = Path(tmp) / "train.jsonl"
        write_train_data(args.corpus, data, args.batch * (args.warmup + args.steps), args.group,
                         2 * max(args.query_max_len, args.passage_max_len))
        spec, prompts = prompt_tokenizer_for(args.model)
        batch = GroupCollator(prompts, prompts.pad_id, args.query_max_len, args.passage_max_len)(
            [GroupDataset(read_train_data(data, args.group, spec.title_separator), args.group)[i]
             for i in range(args.batch)])
        tokens = batch["query_ids"].numel() + batch["passage_ids"].numel()
        where = torch.cuda.get_device_name() if args.device == "cuda" else cpu_description()
        print(f"{where}, {torch.get_num_threads()} threads; {args.model}, master weights {args.dtype}"
              f"{f', LoRA r {args.lora_r} alpha {args.lora_alpha} dropout {args.lora_dropout}' if args.lora else ''}"
              f"{', gradient checkpointing' if args.gradient_checkpointing else ''}"
              f"{f', GradCache chunks of {args.grad_cache_chunk}' if args.grad_cache_chunk else ''}; "
              f"{args.batch} queries x {args.group} passages: query ids {list(batch['query_ids'].shape)}, passage ids "
              f"{list(batch['passage_ids'].shape)} ({tokens} tokens a step); median of {args.steps} steps after "
              f"{args.warmup} warm-up", flush=True)
        results = {}
        passed = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
                  ("model", "batch", "group", "query_max_len", "passage_max_len", "warmup", "steps", "device", "dtype",
                   "corpus", "lora_r", "lora_alpha", "lora_dropout", "grad_cache_chunk")] + switches(args, "-")
        env = child_env(args.plain_malloc)
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--mode", mode, "--data", str(data), "--output", str(Path(tmp) / mode),
                   *passed]
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)  # its stderr: live
            if out.returncode:
                print(f"bench_finetune: the {mode} run failed (exit status {out.returncode})", file=sys.stderr)
                return 1
            r = results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{mode:>8}: step {r['step_s']:.3f} s, {tokens / r['step_s']:.0f} tokens/s, step peak memory "
                  f"{r['peak_mb']:.0f} MB above the resident {r['resident_mb']:.0f} MB, loss {r['loss']:.5f}", flush=True)
    if {"float32", "bf16"} <= set(results):
        fp32, bf16 = results["float32"], results["bf16"]
        gap = abs(bf16["loss"] - fp32["loss"])
        print(f"bf16 vs float32: speed-up {fp32['step_s'] / bf16['step_s']:.2f}x, loss difference {gap:.2e} "
              f"({gap / abs(fp32['loss']):.1e} relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
