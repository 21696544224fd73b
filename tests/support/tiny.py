"""Tiny random-weight decoder models with a locally trained tokenizer, for fast real-component tests."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

SHARED = Path(os.environ.get("LLARA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CRANFIELD = SHARED / "data" / "classic" / "cranfield"


def cranfield_texts(limit: int = 400) -> list[str]:
    with open(CRANFIELD / "corpus.jsonl", encoding="utf-8") as handle:
        return [(rec["title"] + " " + rec["text"]).strip() for rec in map(json.loads, handle)][:limit]


def write_pretrain_data(path: Path, texts: list[str]) -> Path:
    """Reference-format pretraining JSONL: each text summarises itself and predicts the next one."""
    path.write_text("".join(json.dumps({"input": a, "output_summarize": a, "output_predict": b}) + "\n"
                            for a, b in zip(texts, texts[1:])), encoding="utf-8")
    return path


def build_tokenizer(vocab_size: int = 600):
    """A byte-fallback-free BPE tokenizer trained on Cranfield text, with BOS/EOS/PAD/UNK."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=list("\",.:;!?'()-0123456789"))
    tok.train_from_iterator(cranfield_texts() + ['", summarize the above passage within eight words:',
                                                 '", predict the following passage within eight words:'], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", add_bos_token=True)


def build_config(family: str, vocab_size: int):
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "llama":
        return LlamaConfig(**common, tie_word_embeddings=False)
    if family == "qwen2":
        return Qwen2Config(**common, tie_word_embeddings=True)
    if family == "gemma3":
        return Gemma3TextConfig(**common, head_dim=8, sliding_window=16, tie_word_embeddings=True)
    raise ValueError(family)


def build_tiny_model(path: str | Path, family: str = "llama", seed: int = 0) -> Path:
    """Save a tiny random causal LM and its tokenizer as a Hugging Face dir (safetensors)."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(build_config(family, len(tokenizer)))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
