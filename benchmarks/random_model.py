"""A LLaRA encoder with random weights in the released checkpoints' layout, for benchmarks where the real
weights cannot travel (a lent GPU machine): ``--arch llama2-7b`` (LLaMA-2-7B's shapes) or ``tiny``.

Writes the model dir (``tests/support/released.py``'s builder: Meta's LLaMA-2 ``tokenizer.model`` with
``<s1>``..``<s16>`` at the released ids) and an encoder spec for it: the committed
``encoders/bge-llara-passage.json`` (the model card's settings) with ``base_model`` pointing at the dir and
``dtype`` left to the precision policy.

    python benchmarks/random_model.py --arch llama2-7b --tokenizer ../shared/data/tokenizers/llama2-llara \\
        --output /tmp/llama2-7b-random --spec /tmp/llama2-7b-random.json --device cuda --dtype bfloat16
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support (run as a script, only benchmarks/ is on the path)

import torch  # noqa: E402

from llara_retrieval import EncoderSpec  # noqa: E402
from tests.support.released import LLAMA2_7B, RELEASED, TINY, build_released_layout_model  # noqa: E402

ARCHS = {"llama2-7b": LLAMA2_7B, "tiny": TINY}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=list(ARCHS), default="llama2-7b")
    parser.add_argument("--tokenizer", type=Path, default=RELEASED, help="folder with tokenizer.model and "
                        "released_llara_tokens.json (default: ../shared/data/tokenizers/llama2-llara)")
    parser.add_argument("--output", type=Path, required=True, help="model dir to write")
    parser.add_argument("--spec", type=Path, required=True, help="encoder spec JSON to write")
    parser.add_argument("--device", default="cpu", help="where the weights are initialised (cuda: seconds for 7B)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights as stored")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build_released_layout_model(args.output, args.seed, ARCHS[args.arch], getattr(torch, args.dtype), args.device,
                                args.tokenizer)
    card = EncoderSpec.load(ROOT / "encoders" / "bge-llara-passage.json")
    replace(card, base_model=str(args.output.resolve()), dtype=None,
            description=f"random weights, {args.arch} architecture, released LLaRA layout (benchmarks only)"
            ).save(args.spec)
    print(f"random_model: {args.arch} ({args.dtype}) written to {args.output}, spec {args.spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
