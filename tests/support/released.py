"""A tiny model laid out like BAAI's released LLaRA checkpoints, and the model card's encoding loop.

The released checkpoints (BAAI/LLARA-passage, -beir, -document) are LLaMA-2-7B with vocabulary 32,016:
Meta's sentencepiece ``tokenizer.model`` plus ``<s1>``..``<s16>`` at the ids in
``released_llara_tokens.json`` (not in order), a slow ``LlamaTokenizer`` config (legacy, BOS, pad =
``<unk>``), float32 weights. ``build_released_layout_model`` writes the same layout with random
weights (hidden 64, 2 layers; or any LLaMA architecture, e.g. ``LLAMA2_7B`` for the GPU check in
``benchmarks/``), from the shared tokenizer files (../shared/data/tokenizers/llama2-llara).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tests.support.tiny import SHARED

RELEASED = SHARED / "data" / "tokenizers" / "llama2-llara"
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4}
LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "rms_norm_eps": 1e-5}
PASSAGE_TEXT_SUFFIX = '", summarize the above passage within eight words: '
QUERY_TEXT_SUFFIX = '", predict the following passage within eight words: '


def released_tokens(source: Path = RELEASED) -> dict:
    return json.loads((source / "released_llara_tokens.json").read_text(encoding="utf-8"))


def probe_texts() -> dict[str, list[str]]:
    """Every text of the shared probe files: fine-tuning queries and passages, pretraining texts."""
    out: dict[str, list[str]] = {"query": [], "passage": [], "long": []}
    for line in (RELEASED / "probe_finetune.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out["query"].append(rec["query"])
        out["passage"] += rec["pos"] + rec["neg"]
    for line in (RELEASED / "probe_pretrain.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out["long"] += [rec["input"], rec["output_predict"]]
    return out


def _added(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


def build_released_layout_model(path: str | Path, seed: int = 0, arch: dict | None = None,
                                dtype: torch.dtype = torch.float32, device: str = "cpu",
                                source: Path = RELEASED) -> Path:
    """A random ``LlamaForCausalLM`` (vocab 32,016; ``arch``: ``TINY`` unless given) in ``dtype``, built on
    ``device``, with the released tokenizer files from ``source``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    released = released_tokens(source)
    ids = released["special_token_ids"]
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=32016, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, tie_word_embeddings=False, **(arch or TINY))
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in dtype: a 7B model never exists in float32
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(path)
    shutil.copyfile(source / "tokenizer.model", path / "tokenizer.model")
    decoder = {"0": _added("<unk>"), "1": _added("<s>"), "2": _added("</s>")}
    decoder.update({str(i): _added(tok) for tok, i in sorted(ids.items(), key=lambda kv: kv[1])})
    extra = [f"<s{i}>" for i in range(1, 17)]
    config_seen = released["tokenizer_config_seen"]
    (path / "tokenizer_config.json").write_text(json.dumps({
        **config_seen, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False, "sp_model_kwargs": {}, "added_tokens_decoder": decoder,
        "additional_special_tokens": extra}, indent=2))
    (path / "added_tokens.json").write_text(json.dumps(ids, indent=2))
    (path / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": config_seen["pad_token"],
        "additional_special_tokens": extra}, indent=2))
    return path


class ModelCardLoop:
    """The BAAI/LLARA-* model card's encoding, written out independently of the package.

    Each text is tokenised alone (raw sentencepiece, as the slow transformers-4 tokenizer did for
    texts without added tokens) and cut to ``max_length`` tokens; ``BOS "`` goes before and the
    suffix (its text ids, then the 8 special ids) after; rows are left-padded with ``<unk>`` to a
    multiple of 8 with an attention mask; the embedding is the mean of the last hidden states
    (``AutoModel``, after the final norm) at the last 8 positions, L2-normalised.
    """

    def __init__(self, model_dir: str | Path):
        import sentencepiece
        from transformers import AutoModel

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(Path(model_dir) / "tokenizer.model"))
        self.model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
        ids = released_tokens()["special_token_ids"]
        self.prefix = [1] + self.sp.encode('"')
        self.suffix = {"passage": self.sp.encode(PASSAGE_TEXT_SUFFIX) + [ids[f"<s{i}>"] for i in range(1, 9)],
                       "query": self.sp.encode(QUERY_TEXT_SUFFIX) + [ids[f"<s{i}>"] for i in range(9, 17)]}

    def input_ids(self, text: str, side: str, max_length: int = 512) -> list[int]:
        return self.prefix + self.sp.encode(text)[:max_length] + self.suffix[side]

    @torch.no_grad()
    def encode(self, texts: list[str], side: str, max_length: int = 512, batch_size: int = 8) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            rows = [self.input_ids(t, side, max_length) for t in texts[start:start + batch_size]]
            width = -(-max(map(len, rows)) // 8) * 8
            input_ids = torch.zeros(len(rows), width, dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            for i, row in enumerate(rows):
                input_ids[i, width - len(row):] = torch.tensor(row)
                mask[i, width - len(row):] = 1
            hidden = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
            out.append(torch.nn.functional.normalize(hidden[:, -8:, :].mean(dim=1), dim=-1))
        return torch.cat(out)
