"""Encoding throughput: LlaraEncoder vs the public LLaRA model-card loop, same passages, dtype and device.

(a) ``LlaraEncoder.encode_passages`` on the raw texts; (b) the model card's loop, also from the raw
texts: each text tokenised as the card does (its prompt strings, the text cut to ``--max-length``),
fixed-size batches in corpus order left-padded to a multiple of 8, the ``AutoModel`` body with
``output_hidden_states=True``, the last 8 positions pooled. Each method runs in its own process (so
peak memory is its own): one warm-up pass over the same texts, then ``--repeats`` timed passes; the
median (and min) is reported. Prints the CPU model and its ISA, the dtype, tokens/s, the speed ratio
(a)/(b) of the medians, the fraction of this machine's matmul peak in that dtype (the best 2048 × 2048
matmul, timed between the passes of both methods, on the same device), and each method's largest cosine
distance to float32 vectors (LlaraEncoder in float32).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time

import numpy as np
import torch

CARD_PREFIX = '"'
CARD_SUFFIX = '", summarize the above passage within eight words: <s1><s2><s3><s4><s5><s6><s7><s8>'


def rss_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def card_text_ids(tokenizer, max_length: int):
    """How the card's ``tokenizer(text, max_length=..., truncation=True, add_special_tokens=False)`` tokenised
    text: for a released-layout dir (LLaMA-2 ``tokenizer.model``, slow legacy config) that was transformers 4's
    sentencepiece tokenizer, whose ids the ``sentencepiece`` package gives (transformers 5 rebuilds it as a BPE
    tokenizer that differs on some texts); otherwise the tokenizer itself."""
    from llara_retrieval.core.sentencepiece_text import model_file

    path = model_file(tokenizer)
    if path is None:
        return lambda text: tokenizer(text, return_tensors=None, max_length=max_length, truncation=True,
                                      add_special_tokens=False)["input_ids"]
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    return lambda text: processor.encode(text)[:max_length]


def card_loop(model, tokenizer, texts: list[str], batch_size: int, max_length: int, device) -> np.ndarray:
    """The BAAI/LLARA-passage model card's passage loop, from raw text (written out as the card has it)."""
    prefix_ids = tokenizer(CARD_PREFIX, return_tensors=None)["input_ids"]
    suffix_ids = tokenizer(CARD_SUFFIX, return_tensors=None)["input_ids"][1:]
    text_ids = card_text_ids(tokenizer, max_length)
    tokenizer.padding_side = "left"  # the card slices the last 8 positions
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            rows = []
            for text in texts[start:start + batch_size]:
                ids = prefix_ids + text_ids(text) + suffix_ids
                rows.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
            inputs = tokenizer.pad(rows, padding=True, pad_to_multiple_of=8, return_tensors="pt").to(device)
            outputs = model(**inputs, return_dict=True, output_hidden_states=True)
            emb = outputs.hidden_states[-1][:, -8:, :].float().mean(dim=1)
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
    return np.concatenate(out)


def worker(method: str, texts: list[str], args: argparse.Namespace, queue: mp.Queue) -> None:
    from llara_retrieval import LlaraEncoder

    torch.set_num_threads(args.threads)
    dtype = "float32" if method == "float32" else args.dtype
    enc = LlaraEncoder.from_pretrained(args.encoder, device=args.device, dtype=dtype)
    body = enc.model.base_model
    if method == "card":
        def run():
            return card_loop(body, enc.tokenizer, texts, args.batch_size, args.max_length, enc.device)
    else:
        def run():
            return enc.encode_passages(texts, batch_size=args.batch_size, max_length=args.max_length,
                                       show_progress_bar=False)
    loaded = rss_mib("VmRSS")
    vectors = run()  # warm-up on the same texts: allocator, kernels, caches
    seconds, peaks = [], []
    for _ in range(0 if method == "float32" else args.repeats):
        start = time.perf_counter()
        vectors = run()
        if enc.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        peaks.append(matmul_peak(enc.dtype, enc.device, args.peak_size))  # between passes: as the model runs
    ids = enc.prompt_tokenizer.build(texts, "passage", args.max_length)
    queue.put({"method": method, "seconds": seconds, "peaks": peaks, "vectors": vectors, "peak_mib": rss_mib("VmHWM") - loaded,
               "lengths": [len(x) for x in ids], "config": enc.model.config.get_text_config().to_dict(),
               "dtype": enc.dtype,
               "body_params": sum(p.numel() for n, p in body.named_parameters() if "embed" not in n)})


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 3) -> float:
    """FLOP/s of the best of ``repeats`` ``n × n`` matmuls in ``dtype`` on ``device`` (a GPU needs n = 8192 to
    reach its peak; 2048 stays in a CPU's caches)."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first one warms up
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def model_flops(lengths: list[int], cfg: dict, body_params: int) -> float:
    """2 FLOPs per weight per token plus causal attention (QK^T and AV) over each sequence."""
    attn_width = cfg["num_attention_heads"] * (cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    attention = sum(4 * cfg["num_hidden_layers"] * attn_width * n * (n + 1) / 2 for n in lengths)
    return 2 * body_params * sum(lengths) + attention


def prompt_tokenizer_for(encoder: str) -> tuple:
    """``(EncoderSpec, PromptTokenizer)`` of the encoder, from its tokenizer alone (no weights are loaded)."""
    from transformers import AutoTokenizer

    from llara_retrieval.core.default_model import ensure_default_model
    from llara_retrieval.core.loading import resolve_spec
    from llara_retrieval.core.prompts import PromptTokenizer

    spec = resolve_spec(encoder)
    tok = AutoTokenizer.from_pretrained(str(ensure_default_model()) if spec.base_model == "default" else spec.base_model)
    tok.add_tokens(spec.prompts.special_tokens, special_tokens=True)
    return spec, PromptTokenizer(tok, spec.prompts)


def select_passages(corpus: str, count: int, max_length: int, encoder: str) -> list[str]:
    """The first ``count`` corpus passages (title + text) whose wrapped length fits ``max_length``."""
    from llara_retrieval.core.prompts import format_passage

    spec, prompts = prompt_tokenizer_for(encoder)
    chosen = []
    with open(corpus, encoding="utf-8") as handle:
        for rec in map(json.loads, handle):
            text = format_passage(rec, spec.title_separator)
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
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each method after its warm-up")
    parser.add_argument("--dtype", default=None, help="default: the precision policy's choice for this machine")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--peak-size", type=int, default=None,
                        help="n of the n × n matmul that measures the peak (default: 8192 on CUDA, 2048 on CPU)")
    args = parser.parse_args()
    args.peak_size = args.peak_size or (8192 if args.device.startswith("cuda") else 2048)
    if args.repeats < 1:
        raise SystemExit("bench_encode: --repeats must be at least 1")

    from llara_retrieval.core.precision import cpu_description, dtype_name

    texts = select_passages(args.corpus, args.num_docs, args.max_length, args.encoder)
    ctx = mp.get_context("spawn")
    results = {}
    for method in ("llara", "card", "float32"):
        if method == "float32" and results["llara"]["dtype"] == torch.float32:
            results[method] = results["llara"]  # already float32: it is its own reference
            continue
        queue = ctx.Queue()
        proc = ctx.Process(target=worker, args=(method, texts, args, queue))
        proc.start()
        results[method] = queue.get()
        proc.join()
    dtype = results["llara"]["dtype"]
    peak = max(results["llara"]["peaks"] + results["card"]["peaks"])
    tokens = sum(results["llara"]["lengths"])
    flops = model_flops(results["llara"]["lengths"], results["llara"]["config"], results["llara"]["body_params"])
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_description()
    print(f"{device}, {args.threads} threads, {dtype_name(dtype)}")
    print(f"{len(texts)} passages, {tokens} tokens (prompt included, <= {args.max_length}), batch {args.batch_size}, "
          f"warm-up + {args.repeats} timed passes each")
    print(f"matmul peak ({dtype_name(dtype)}, {args.peak_size}^3): {peak / 1e9:.0f} GFLOP/s; "
          f"model cost {flops / tokens / 1e6:.0f} MFLOP/token")
    print(f"{'method':<24}{'median s':>9}{'min s':>8}{'tokens/s':>10}{'of peak':>9}{'peak MiB':>10}"
          f"{'cos dist fp32':>15}")
    reference = results["float32"]["vectors"]
    for method, label in (("card", "(b) model-card loop"), ("llara", "(a) LlaraEncoder")):
        r = results[method]
        median = statistics.median(r["seconds"])
        distance = 1 - (r["vectors"] * reference).sum(axis=1).min()
        print(f"{label:<24}{median:>9.2f}{min(r['seconds']):>8.2f}{tokens / median:>10.0f}"
              f"{flops / median / peak:>9.0%}{r['peak_mib']:>10.0f}{distance:>15.2e}")
    ratio = statistics.median(results["card"]["seconds"]) / statistics.median(results["llara"]["seconds"])
    print(f"speed ratio (a)/(b), medians: {ratio:.2f}x")


if __name__ == "__main__":
    main()
