"""Pretraining step time and peak memory: our step vs a reference-style step, same model, same batch.

- ours (``PretrainLoss``): one forward over the combined sequence (4-D mask, shared position ids), then
  the LM head only at the 16 special columns and the text, chunk by chunk from the final hidden states,
  with one vocabulary-sized gradient for the tied head/embedding weight (``train/head_losses.py``);
- reference-style (as the public LLaRA code): two forwards (passage side, query side) with
  full-vocabulary logits at every position, the same losses taken from them;
- ours under bf16 autocast (float32 master weights), what ``--precision auto`` trains in where bf16 is
  native: its step time and memory against ours in float32 (on a CPU without native bf16, e.g. AVX2
  only, bf16 is emulated and slower: the policy then trains in float32).

Each mode runs in its own subprocess (so peak memory is its own): load the model, build the batch, run
``--warmup`` + ``--steps`` training steps (forward, backward, SGD step); report the median step time,
the step's peak memory above the resident weights + gradient buffers, measured after the warm-up step
with the peak reset (CPU: VmHWM above VmRSS, large blocks mmapped so freed memory leaves RSS; CUDA:
the allocator's peak above its allocated bytes), the process's total peak, and the loss of the first
step (must agree between the modes).

    python benchmarks/bench_train.py [--model default] [--batch 4] [--max_length 128] [--steps 3]
                                     [--device cpu|cuda] [--dtype float32|bfloat16] [--data F.jsonl]
                                     [--no-autocast]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "text" / "wikitext2_paragraphs.jsonl"


class Memory:
    """Resident and peak memory of this process (CPU) or of the CUDA allocator, in MB."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def resident(self) -> float:
        import torch

        return torch.cuda.memory_allocated() / 2**20 if self.cuda else rss_mb("VmRSS")

    def peak(self) -> float:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20 if self.cuda else rss_mb("VmHWM")

    def reset_peak(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats() if self.cuda else reset_peak()

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()


PLAIN_MALLOC_HELP = ("time the steps with glibc's default malloc, as a training run has it (faster: freed blocks under "
                     "its threshold are reused, not faulted in again); the memory columns then miss what malloc kept")


def child_env(plain_malloc: bool) -> dict[str, str]:
    """The children's environment: by default every block over 64 KB gets fresh pages from the kernel and goes
    back when freed, so that resident memory follows the live tensors (the peak columns); on a CPU those page
    faults also make each step slower than a training run's."""
    if plain_malloc:
        return dict(os.environ)
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_batch(args, tokenizer, spec):
    """``--batch`` examples as ``train pretrain --length_budget branch`` makes them: each chunk of the text
    summarises itself (EBAE) and predicts the next chunk (EBAR)."""
    from llara_retrieval.core.prompts import PromptTokenizer
    from llara_retrieval.train.pretrain.data import PretrainCollator, PretrainDataset, excluded_target_ids
    from llara_retrieval.train.pretrain.prepare import Chunker

    pt = PromptTokenizer(tokenizer, spec.prompts)
    texts = [json.loads(line)["text"] for line in Path(args.data).open(encoding="utf-8")][:200]
    chunks = [c for t in texts for c in Chunker(tokenizer, args.max_length).chunks(t)][:args.batch + 1]
    records = [(chunks[i], chunks[i], chunks[i + 1]) for i in range(args.batch)]
    dataset = PretrainDataset(records, pt, args.max_length, excluded=excluded_target_ids(tokenizer, pt),
                              length_budget="branch")
    return PretrainCollator(pt, tokenizer.pad_token_id)(list(dataset))


def reference_logits(model, batch):
    """Two forwards with full-vocabulary logits everywhere, then the columns the losses need."""
    from llara_retrieval.train.pretrain.data import EBAE, EBAR, PAD

    ids, pos, seg = batch["input_ids"], batch["position_ids"], batch["segments"]
    width = ids.shape[1]
    a_len, b_len = int((seg == EBAE).sum(1).max()), int((seg == EBAR).sum(1).max())
    qcols = list(range(width - a_len - b_len)) + list(range(width - b_len, width))
    passage = model(input_ids=ids[:, :width - b_len], attention_mask=(seg[:, :width - b_len] != PAD).long(),
                    position_ids=pos[:, :width - b_len], use_cache=False).logits
    query = model(input_ids=ids[:, qcols], attention_mask=(seg[:, qcols] != PAD).long(),
                  position_ids=pos[:, qcols], use_cache=False).logits
    return passage[:, batch["lm_columns"]], passage[:, batch["ebae_columns"]], query[:, batch["ebar_columns"] - a_len]


def child(args) -> None:
    import torch

    from llara_retrieval.core.loading import load_model, resolve_spec
    from llara_retrieval.train.pretrain.model import PretrainLoss, bag_of_words_loss, lm_loss

    torch.manual_seed(0)
    spec = resolve_spec(args.model)
    model, tokenizer = load_model(spec, getattr(torch, args.dtype))
    model.to(args.device).train()
    model.config.use_cache = False
    batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in build_batch(args, tokenizer, spec).items()}
    memory = Memory(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    ours = PretrainLoss()

    def loss_of(batch):
        if args.mode == "ours-bf16-autocast":
            with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16):
                return ours(model, batch)["loss"]
        if args.mode == "ours":
            return ours(model, batch)["loss"]
        lm, ebae, ebar = reference_logits(model, batch)
        return (lm_loss(lm, batch["lm_labels"]) + 0.05 * bag_of_words_loss(ebae, batch["summarize_targets"])
                + 0.05 * bag_of_words_loss(ebar, batch["predict_targets"]))

    times, first_loss, base = [], None, None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:  # weights and gradient buffers are now resident: reset the peak
            memory.sync()
            base = memory.resident()
            memory.reset_peak()
        start = time.perf_counter()
        loss = loss_of(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        memory.sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
        first_loss = float(loss) if first_loss is None else first_loss
    print(json.dumps({"mode": args.mode, "step_s": statistics.median(times), "peak_mb": memory.peak() - base,
                      "resident_mb": base, "total_peak_mb": memory.peak(), "loss": first_loss,
                      "shape": list(batch["input_ids"].shape)}))


def reset_peak() -> None:
    """Reset VmHWM (Linux ``clear_refs`` 5); without it the peak includes the warm-up step."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        print("warning: cannot reset the peak RSS; peak includes the warm-up", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="encoder/model (default: the embedded gemma-3-270m)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights (default: float32)")
    parser.add_argument("--data", default=str(DATA), help="JSONL of {'text'} paragraphs (default: shared wikitext-2)")
    parser.add_argument("--plain-malloc", action="store_true", help=PLAIN_MALLOC_HELP)
    parser.add_argument("--no-autocast", dest="autocast", action="store_false",
                        help="skip the bf16-autocast run of our step")
    parser.add_argument("--mode", choices=["ours", "reference", "ours-bf16-autocast"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        child(args)
        return 0
    from llara_retrieval.core.precision import cpu_description

    where = args.device if args.device.startswith("cuda") else cpu_description()
    print(f"{where}, weights {args.dtype}, batch {args.batch} x {args.max_length} tokens, "
          f"median of {args.steps} steps after {args.warmup} warm-up", flush=True)
    results = {}
    for mode in ("ours", "reference") + (("ours-bf16-autocast",) if args.autocast else ()):
        passed = ("model", "batch", "max_length", "warmup", "steps", "device", "dtype", "data")
        cmd = [sys.executable, __file__, "--mode", mode] + [f"--{k}={getattr(args, k)}" for k in passed]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=child_env(args.plain_malloc))
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[mode]
        print(f"{mode:>18}: step {r['step_s']:.3f} s, step peak memory {r['peak_mb']:.0f} MB above the resident "
              f"{r['resident_mb']:.0f} MB (total peak {r['total_peak_mb']:.0f} MB), loss {r['loss']:.5f}, "
              f"batch {r['shape']}", flush=True)
    ours, ref = results["ours"], results["reference"]
    print(f"speed-up {ref['step_s'] / ours['step_s']:.2f}x, memory reduction {ref['peak_mb'] / ours['peak_mb']:.2f}x, "
          f"loss difference {abs(ref['loss'] - ours['loss']):.2e}")
    if args.autocast:
        bf16 = results["ours-bf16-autocast"]
        gap = abs(bf16["loss"] - ours["loss"])
        print(f"bf16 autocast vs float32 (ours): speed-up {ours['step_s'] / bf16['step_s']:.2f}x, step memory "
              f"{bf16['peak_mb']:.0f} vs {ours['peak_mb']:.0f} MB, loss difference {gap:.2e} "
              f"({gap / abs(ours['loss']):.1e} relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
