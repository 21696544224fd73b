"""LlaraEncoder: the one LLaRA encoder that Pyserini, BEIR and the trainer all build on."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from llara_retrieval._utils.atomic import atomic_dir
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.loading import load_model, resolve_spec
from llara_retrieval.core.pooling import pool_special_tokens, transformer_body
from llara_retrieval.core.precision import dtype_name, is_auto, log_precision, resolve_device, resolve_dtype
from llara_retrieval.core.prompts import PromptTokenizer, Side, format_passage
from llara_retrieval.core.sentencepiece_text import save_tokenizer
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec
from llara_retrieval.core.st_layout import write_st_files

Passage = str | Mapping[str, str]
PROGRESS_MIN_TEXTS = 256
CPU_BATCH_TOKENS = 2048  # measured with benchmarks/bench_encode.py: see docs/benchmarks.md


class LlaraEncoder:
    """Encodes queries and passages with LLaRA prompts and special-token mean pooling.

    Texts are sorted by length and padded per batch (on the right, so no attention mask is needed
    under causal attention), batches are capped by padded tokens as well as by count on a CPU (long
    texts go in smaller batches that stay in cache), the LM head is never computed, and vectors are
    L2-normalised float32.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, spec: EncoderSpec, device: torch.device,
                 padding_side: str = "right", max_batch_tokens: int | None | str = "auto"):
        """
        Args:
            padding_side: "right" (no mask needed under causal attention) or "left" (mask + positions).
            max_batch_tokens: a batch also stops growing before its padded size (rows × longest row)
                passes this many tokens, so long texts go in smaller batches that stay in cache; None: by
                ``batch_size`` only; "auto": 2,048 on a CPU (1.2× the throughput of 16 passages of up
                to 512 tokens a batch, measured), None on a GPU (which wants large batches).
        """
        if padding_side not in ("left", "right"):
            raise LlaraError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        if max_batch_tokens == "auto":
            max_batch_tokens = CPU_BATCH_TOKENS if device.type == "cpu" else None
        if max_batch_tokens is not None and (not isinstance(max_batch_tokens, int) or max_batch_tokens < 1):
            raise LlaraError(f"max_batch_tokens must be at least 1, not {max_batch_tokens}")
        self.max_batch_tokens = max_batch_tokens
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
                        padding_side: str = "right", max_batch_tokens: int | None | str = "auto") -> "LlaraEncoder":
        """Load from a hub id, HF dir, ``.gguf`` file, encoder dir, spec file or ``None``/"default".

        ``dtype`` None (or "auto") takes the spec's, and where the spec has none (``dtype: null``, what
        encoder dirs record unless pinned) the precision policy's (``core/precision.py``).
        """
        spec = resolve_spec(name_or_path)
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(spec.dtype if is_auto(dtype) else dtype, dev)
        pinned = f"dtype={dtype}" if not is_auto(dtype) else None if is_auto(spec.dtype) else "the spec"
        log_precision(dev, torch_dtype, pinned_by=pinned)
        model, tokenizer = load_model(spec, torch_dtype, trust_remote_code=trust_remote_code)
        model.to(device=dev, dtype=torch_dtype)
        return cls(model, tokenizer, spec, dev, padding_side=padding_side, max_batch_tokens=max_batch_tokens)

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
            for batch in length_batches(order, [len(x) for x in ids], batch_size, self.max_batch_tokens):
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

    def save_pretrained(self, path: str | Path, overwrite: bool = False,
                        dtype: str | torch.dtype | None = None) -> Path:
        """Write a self-describing encoder dir (safetensors + tokenizer + ``llara_config.json``), which
        ``SentenceTransformer(path)`` loads too (``core/st_layout.py``).

        ``llara_config.json`` records ``dtype: null`` (each machine then loads in its best precision) unless
        ``dtype`` or the encoder's own spec pins one; the weights are saved in that pinned dtype, else in
        their current one.

        The dir is written beside the target and renamed into place, so a failure leaves nothing
        that looks finished; an existing non-empty dir is replaced only with ``overwrite=True``.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise LlaraError(f"{path}: exists and is not a directory")
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise LlaraError(f"{path}: already exists and is not empty (pass overwrite=True to replace it)")
        if is_auto(dtype):
            dtype = self.spec.dtype
        pinned = None if is_auto(dtype) else resolve_dtype(dtype, self.device)
        with atomic_dir(path, replace=True) as tmp:
            _save_weights(self.model, tmp, pinned)
            save_tokenizer(self.tokenizer, tmp)
            provenance = self.spec.provenance or {"base_model": self.spec.base_model, "adapter": self.spec.adapter}
            replace(self.spec, base_model=".", gguf_file=None, adapter=None,
                    dtype=dtype_name(pinned) if pinned else None,
                    provenance=provenance).save(tmp / SPEC_FILE)
            write_st_files(tmp, self.tokenizer, self.spec, self.dim, required=False)  # SentenceTransformer(path)
        return path


def _save_weights(model: torch.nn.Module, path: Path, dtype: torch.dtype | None) -> None:
    """``model.save_pretrained(path)``, its floating-point weights (and config.json's dtype) cast to
    ``dtype`` in the copy written; the model in memory is left untouched."""
    if dtype is None or dtype == next(model.parameters()).dtype:
        model.save_pretrained(path)
        return
    cast: dict[int, torch.Tensor] = {}  # one copy per storage, so tied weights stay tied in the file
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point() and value.data_ptr() not in cast:
            cast[value.data_ptr()] = value.to(dtype)
        state[key] = cast[value.data_ptr()] if value.is_floating_point() else value
    model.save_pretrained(path, state_dict=state)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))  # HF names the model's own dtype
    config["dtype"] = dtype_name(dtype)
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def length_batches(order: Sequence[int], lengths: Sequence[int], batch_size: int,
                   max_tokens: int | None) -> Iterator[list[int]]:
    """Consecutive batches of ``order`` (longest first) of at most ``batch_size`` rows and, when
    ``max_tokens`` is set, at most that many padded tokens (a row longer than that goes alone)."""
    batch: list[int] = []
    for i in order:
        over_budget = max_tokens is not None and batch and (len(batch) + 1) * lengths[batch[0]] > max_tokens
        if len(batch) == batch_size or over_budget:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _check_text(value: object, index: int, kind: str, field_name: str | None = None) -> str:
    if isinstance(value, str):
        return value
    what = f"field '{field_name}'" if field_name else "value"
    got = "missing" if value is None else f"a {type(value).__name__}"
    raise LlaraError(f"{kind} {index}: {what} must be a string, got {got}")
