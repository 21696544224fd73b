"""LlaraEncoder: the one LLaRA encoder that Pyserini, BEIR and the trainer all build on."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from llara_retrieval._utils.atomic import atomic_dir
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.loading import load_model, resolve_spec
from llara_retrieval.core.pooling import pool_special_tokens, transformer_body
from llara_retrieval.core.precision import dtype_name, resolve_device, resolve_dtype
from llara_retrieval.core.prompts import PromptTokenizer, Side, format_passage
from llara_retrieval.core.sentencepiece_text import save_tokenizer
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec
from llara_retrieval.core.st_layout import write_st_files

Passage = str | Mapping[str, str]
PROGRESS_MIN_TEXTS = 256


class LlaraEncoder:
    """Encodes queries and passages with LLaRA prompts and special-token mean pooling.

    Texts are sorted by length and padded per batch (on the right, so no attention mask is needed
    under causal attention), the LM head is never computed, and vectors are L2-normalised float32.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, spec: EncoderSpec, device: torch.device,
                 padding_side: str = "right"):
        if padding_side not in ("left", "right"):
            raise LlaraError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.padding_side = padding_side
        self.prompt_tokenizer = PromptTokenizer(tokenizer, spec.prompts)
        self.pad_id = self.prompt_tokenizer.pad_id

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, trust_remote_code: bool = False,
                        padding_side: str = "right") -> "LlaraEncoder":
        """Load from a hub id, HF dir, ``.gguf`` file, encoder dir, spec file or ``None``/"default"."""
        spec = resolve_spec(name_or_path)
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype if dtype is not None else spec.dtype, dev)
        model, tokenizer = load_model(spec, torch_dtype, trust_remote_code=trust_remote_code)
        model.to(device=dev, dtype=torch_dtype)
        return cls(model, tokenizer, spec, dev, padding_side=padding_side)

    @property
    def dim(self) -> int:
        return self.model.config.get_text_config().hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, max_length: int | None = None,
                       show_progress_bar: bool | None = None) -> np.ndarray:
        """``[n, dim]`` float32 query vectors (EBAR prompt), rows L2-normalised."""
        texts = [_check_text(q, i, "query") for i, q in enumerate(queries)]
        return self.encode(texts, "query", batch_size, max_length or self.spec.query_max_length, show_progress_bar)

    def encode_passages(self, passages: Sequence[Passage], batch_size: int = 32, max_length: int | None = None,
                        show_progress_bar: bool | None = None) -> np.ndarray:
        """``[n, dim]`` float32 passage vectors (EBAE prompt); records ``{"title","text"}`` or strings."""
        texts = [self.passage_text(p, i) for i, p in enumerate(passages)]
        return self.encode(texts, "passage", batch_size, max_length or self.spec.passage_max_length,
                           show_progress_bar)

    def passage_text(self, passage: Passage, index: int = 0) -> str:
        """The text a passage is encoded as (``format_passage`` with the spec's ``title_separator``)."""
        if not isinstance(passage, Mapping):
            passage = _check_text(passage, index, "passage")
        return format_passage(passage, self.spec.title_separator, f"passage {index}")

    def encode(self, texts: Sequence[str], side: Side, batch_size: int = 32, max_length: int | None = None,
               show_progress_bar: bool | None = None) -> np.ndarray:
        """Vectors of bare texts wrapped in the ``side`` prompt; ``max_length`` covers what the spec's
        ``length_budget`` says (the whole sequence, or the text with the prompt on top)."""
        if batch_size < 1:
            raise LlaraError(f"batch_size must be at least 1, not {batch_size}")
        ids = self.prompt_tokenizer.build(texts, side, max_length, self.spec.length_budget)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        show = len(ids) >= PROGRESS_MIN_TEXTS if show_progress_bar is None else show_progress_bar
        desc = "encode queries" if side == "query" else "encode passages"
        with tqdm(total=len(ids), desc=desc, unit=side, disable=not show) as bar:
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                out[batch] = self.embed_ids([ids[i] for i in batch], side).cpu().numpy()
                bar.update(len(batch))
        return out

    @torch.inference_mode()
    def embed_ids(self, batch_ids: Sequence[Sequence[int]], side: Side) -> torch.Tensor:
        """Pooled float32 embeddings of already-wrapped input ids (one forward, no LM head)."""
        input_ids, attention_mask = self.collate(batch_ids)
        kwargs = {}
        if attention_mask is not None:  # left padding needs the mask and shifted positions
            kwargs = {"attention_mask": attention_mask,
                      "position_ids": (attention_mask.cumsum(1) - 1).clamp(min=0)}
        hidden = transformer_body(self.model)(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state
        return pool_special_tokens(hidden, input_ids, self.prompt_tokenizer.special_ids[side])

    def collate(self, batch_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pad to the longest sequence; right padding needs no mask under causal attention."""
        width = max(len(x) for x in batch_ids)
        input_ids = torch.full((len(batch_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(batch_ids):
            cols = slice(0, len(ids)) if self.padding_side == "right" else slice(width - len(ids), width)
            input_ids[row, cols] = torch.as_tensor(ids)
            mask[row, cols] = 1
        input_ids = input_ids.to(self.device)
        return input_ids, (mask.to(self.device) if self.padding_side == "left" else None)

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a self-describing encoder dir (safetensors + tokenizer + ``llara_config.json``), which
        ``SentenceTransformer(path)`` loads too (``core/st_layout.py``).

        The dir is written beside the target and renamed into place, so a failure leaves nothing
        that looks finished; an existing non-empty dir is replaced only with ``overwrite=True``.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise LlaraError(f"{path}: exists and is not a directory")
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise LlaraError(f"{path}: already exists and is not empty (pass overwrite=True to replace it)")
        with atomic_dir(path, replace=True) as tmp:
            self.model.save_pretrained(tmp)
            save_tokenizer(self.tokenizer, tmp)
            provenance = self.spec.provenance or {"base_model": self.spec.base_model, "adapter": self.spec.adapter}
            replace(self.spec, base_model=".", gguf_file=None, adapter=None, dtype=dtype_name(self.dtype),
                    provenance=provenance).save(tmp / SPEC_FILE)
            write_st_files(tmp, self.tokenizer, self.spec, self.dim, required=False)  # SentenceTransformer(path)
        return path


def _check_text(value: object, index: int, kind: str, field_name: str | None = None) -> str:
    if isinstance(value, str):
        return value
    what = f"field '{field_name}'" if field_name else "value"
    got = "missing" if value is None else f"a {type(value).__name__}"
    raise LlaraError(f"{kind} {index}: {what} must be a string, got {got}")
