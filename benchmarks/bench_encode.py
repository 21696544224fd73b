"""Encoding throughput: LlaraEncoder vs the public LLaRA model-card loop, same passages, dtype and device.

(a) LlaraEncoder.encode_passages; (b) the model card's loop: AutoModel-style body with
output_hidden_states=True, fixed-size batches in corpus order padded (pad_to_multiple_of=8) to the
longest, last 8 positions pooled. Each runs in its own process so peak memory is its own. Prints
docs/s, tokens/s, peak memory, the speed ratio (a)/(b), the largest cosine distance between the two
sets of vectors, and the fraction of this machine's bf16 matmul peak (measured in the same run).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

import numpy as np
import torch


def rss_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def card_loop(encoder, ids: list[list[int]], batch_size: int, sort: bool = False) -> np.ndarray:
    """The model card's loop, fed the same token ids (BOS '"' text suffix) as the encoder.

    ``sort=True`` (ablation) batches the texts by length first, changing nothing else.
    """
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i])) if sort else list(range(len(ids)))
    ids = [ids[i] for i in order]
    tok = encoder.tokenizer
    tok.padding_side = "left"  # the card slices the last 8 positions, which needs left padding
    body = encoder.model.base_model
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            feats = [{"input_ids": x, "attention_mask": [1] * len(x)} for x in ids[start:start + batch_size]]
            inputs = tok.pad(feats, padding=True, pad_to_multiple_of=8, return_tensors="pt").to(encoder.device)
            outputs = body(**inputs, return_dict=True, output_hidden_states=True)
            emb = outputs.hidden_states[-1][:, -8:, :].float().mean(dim=1)
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
    vectors = np.empty((len(ids), out[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(out)
    return vectors


def worker(method: str, texts: list[str], args: argparse.Namespace, queue: mp.Queue) -> None:
    from llara_retrieval import LlaraEncoder

    torch.set_num_threads(args.threads)
    enc = LlaraEncoder.from_pretrained(args.encoder, device=args.device, dtype=args.dtype)
    ids = enc.prompt_tokenizer.build(texts, "passage", args.max_length)
    if method == "llara-left":  # ablation: our loop, but left padding with a mask and position ids
        enc.padding_side = "left"
    methods = {
        "card": lambda: card_loop(enc, ids, args.batch_size),
        "card-sorted": lambda: card_loop(enc, ids, args.batch_size, sort=True),
        "llara-left": lambda: enc.encode_passages(texts, batch_size=args.batch_size, max_length=args.max_length,
                                                  show_progress_bar=False),
    }
    methods["llara"] = methods["llara-left"]
    run = methods[method]
    enc.encode_passages(texts[:2], show_progress_bar=False)  # warm-up: allocator, kernels
    loaded = rss_mib("VmRSS")
    start = time.perf_counter()
    vectors = run()
    seconds = time.perf_counter() - start
    queue.put({"method": method, "seconds": seconds, "vectors": vectors, "peak_mib": rss_mib("VmHWM") - loaded,
               "lengths": [len(x) for x in ids], "config": enc.model.config.to_dict(),
               "dtype": enc.dtype, "body_params": sum(p.numel() for n, p in enc.model.base_model.named_parameters() if "embed" not in n)})


def matmul_peak(dtype: torch.dtype, threads: int, n: int = 2048, repeats: int = 5) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def model_flops(lengths: list[int], cfg: dict, body_params: int) -> float:
    """2 FLOPs per weight per token plus causal attention (QK^T and AV) over each sequence."""
    attn_width = cfg["num_attention_heads"] * (cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    attention = sum(4 * cfg["num_hidden_layers"] * attn_width * n * (n + 1) / 2 for n in lengths)
    return 2 * body_params * sum(lengths) + attention


def select_passages(corpus: str, count: int, max_length: int, encoder: str) -> list[str]:
    """The first ``count`` corpus passages (title + text) whose wrapped length fits ``max_length``."""
    from transformers import AutoTokenizer

    from llara_retrieval.core.default_model import ensure_default_model
    from llara_retrieval.core.loading import resolve_spec
    from llara_retrieval.core.prompts import PromptTokenizer

    spec = resolve_spec(encoder)
    tok = AutoTokenizer.from_pretrained(str(ensure_default_model()) if spec.base_model == "default" else spec.base_model)
    tok.add_tokens(spec.prompts.special_tokens, special_tokens=True)
    prompts = PromptTokenizer(tok, spec.prompts)
    chosen = []
    with open(corpus, encoding="utf-8") as handle:
        for rec in map(json.loads, handle):
            text = f"{rec.get('title', '').strip()} {rec['text']}".strip()
            if len(prompts.build([text], "passage", None)[0]) <= max_length:
                chosen.append(text)
            if len(chosen) == count:
                break
    if not chosen:
        raise SystemExit(f"bench_encode: no passage of {corpus} fits --max-length {max_length}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--encoder", default="default")
    parser.add_argument("--num-docs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--dtype", default=None, help="default: the encoder's own choice for this machine")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--ablation", action="store_true",
                        help="also time the card loop with length sorting, and our loop with left padding + mask")
    args = parser.parse_args()

    texts = select_passages(args.corpus, args.num_docs, args.max_length, args.encoder)
    ctx = mp.get_context("spawn")
    results = {}
    methods = ("card", "card-sorted", "llara-left", "llara") if args.ablation else ("card", "llara")
    for method in methods:
        queue = ctx.Queue()
        proc = ctx.Process(target=worker, args=(method, texts, args, queue))
        proc.start()
        results[method] = queue.get()
        proc.join()
    dtype = results["llara"]["dtype"]
    peak = matmul_peak(dtype, args.threads)

    tokens = sum(results["llara"]["lengths"])
    flops = model_flops(results["llara"]["lengths"], results["llara"]["config"], results["llara"]["body_params"])
    print(f"{len(texts)} SciFact passages, {tokens} tokens (prompt included, <= {args.max_length}), "
          f"batch {args.batch_size}, {dtype}, {args.device}, {args.threads} threads")
    print(f"matmul peak ({dtype}, {args.threads} threads): {peak / 1e9:.0f} GFLOP/s; "
          f"model cost {flops / tokens / 1e6:.0f} MFLOP/token")
    print(f"{'method':<30}{'seconds':>9}{'docs/s':>9}{'tokens/s':>10}{'peak MiB':>10}{'of peak':>9}")
    labels = {"card": "(b) model-card loop", "card-sorted": "(b) + length-sorted batches",
              "llara-left": "(a) with left padding + mask", "llara": "(a) LlaraEncoder"}
    for method in methods:
        r = results[method]
        print(f"{labels[method]:<30}{r['seconds']:>9.2f}{len(texts) / r['seconds']:>9.2f}{tokens / r['seconds']:>10.0f}"
              f"{r['peak_mib']:>10.0f}{flops / r['seconds'] / peak:>9.0%}")
    ratio = results["card"]["seconds"] / results["llara"]["seconds"]
    cos = (results["llara"]["vectors"] * results["card"]["vectors"]).sum(axis=1)
    print(f"speed ratio (a)/(b): {ratio:.2f}x")
    print(f"largest cosine distance between (a) and (b) vectors: {1 - cos.min():.2e}")


if __name__ == "__main__":
    main()
