"""The LLaRA adaptation loss: EBAE + EBAR (+ optional next-token LM) from one forward pass.

One forward over ``prefix text ebae_suffix ebar_suffix`` with a 4-D mask in which the EBAR suffix sees
the text and itself but not the EBAE suffix, and restarts its position ids right after the text: the
two branches then get exactly the hidden states of two separate forwards. The LM head is applied only
to the 16 special columns; the next-token loss over the text (when its weight is non-zero) is computed
from the final hidden states chunk by chunk, never holding full-vocabulary logits for the whole text.
Attention kernels that cannot take a 4-D mask (flash attention, flex) use two forwards instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .linear_cross_entropy import linear_cross_entropy
from .pretrain_data import EBAE, EBAR, PAD, SHARED

MASK_4D_IMPLEMENTATIONS = ("eager", "sdpa")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP/DeepSpeed wrappers (PEFT models keep their wrapper: they proxy ``config``)."""
    while hasattr(model, "module"):
        model = model.module
    return model


def supports_4d_mask(config) -> bool:
    return getattr(config, "_attn_implementation", None) in MASK_4D_IMPLEMENTATIONS


def allowed_attention(segments: torch.Tensor, positions: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """Boolean ``[n, 1, w, w]``: query column attends key column (causal; EBAR never sees EBAE).

    Padding keys are hidden from everyone; a padding query sees only itself (no all-masked rows, which
    would turn into NaN). ``window`` applies a sliding window in position-id distance, as HF does.
    """
    cols = torch.arange(segments.shape[1], device=segments.device)
    q_seg, k_seg = segments[:, :, None], segments[:, None, :]
    allowed = (cols[None, None, :] <= cols[None, :, None]) & (k_seg != PAD)
    allowed &= (k_seg == SHARED) | (k_seg == q_seg)
    if window is not None:
        allowed &= (positions[:, :, None] - positions[:, None, :]) < window
    allowed |= torch.eye(len(cols), dtype=torch.bool, device=cols.device)[None] & (q_seg == PAD)
    return allowed[:, None]


def attention_masks(config, segments: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype):
    """The ``attention_mask`` argument for a combined batch: bool for SDPA, additive float for eager;
    a ``{"full_attention", "sliding_attention"}`` dict for models mixing both layer kinds (Gemma 3)."""
    window = getattr(config, "sliding_window", None)
    kinds = set(getattr(config, "layer_types", None) or [])

    def convert(mask: torch.Tensor) -> torch.Tensor:
        if config._attn_implementation == "sdpa":
            return mask
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)

    if window and "sliding_attention" in kinds and len(kinds) > 1:
        return {"full_attention": convert(allowed_attention(segments, positions)),
                "sliding_attention": convert(allowed_attention(segments, positions, window))}
    uses_window = window and (kinds == {"sliding_attention"} or (not kinds and getattr(config, "use_sliding_window",
                                                                                       True)))
    return convert(allowed_attention(segments, positions, window if uses_window else None))


def bag_of_words_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Max-pool ``[n, k, V]`` logits over the k positions, log-softmax, mean ``-log p`` over each row's
    distinct targets (``-1`` = none); the mean over rows that have targets."""
    logp = torch.log_softmax(logits.float().amax(dim=1), dim=-1)
    present = targets >= 0
    picked = logp.gather(1, targets.clamp(min=0)) * present
    per_row = -picked.sum(1) / present.sum(1).clamp(min=1)
    rows = present.any(1)
    return per_row[rows].mean() if bool(rows.any()) else logits.sum() * 0.0


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, averaged over each row's text tokens, then over rows (so the loss does
    not depend on how a global batch is split between devices)."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
    counts = (labels != -100).sum(1)
    rows = counts > 0
    return (nll.sum(1)[rows] / counts[rows]).mean() if bool(rows.any()) else logits.sum() * 0.0


@dataclass
class PretrainLoss:
    """``loss = lm_weight * L_LM + ebae_weight * L_EBAE + ebar_weight * L_EBAR`` (reference: 1, .05, .05)."""

    ebae_weight: float = 0.05
    ebar_weight: float = 0.05
    lm_weight: float = 1.0
    single_forward: bool = True

    def __call__(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        config = unwrap(model).config
        one = self.single_forward and supports_4d_mask(config)
        text_hidden, ebae_logits, ebar_logits = (self._one_forward if one else self._two_forwards)(model, batch)
        parts = {"ebae": bag_of_words_loss(ebae_logits, batch["summarize_targets"]),
                 "ebar": bag_of_words_loss(ebar_logits, batch["predict_targets"])}
        if text_hidden is not None:
            parts["lm"] = text_lm_loss(model, text_hidden, batch["lm_labels"])
        total = self.ebae_weight * parts["ebae"] + self.ebar_weight * parts["ebar"]
        if "lm" in parts and self.lm_weight:
            total = total + self.lm_weight * parts["lm"]
        return {"loss": total, **parts}

    def _one_forward(self, model, batch):
        config = unwrap(model).config
        dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        mask = attention_masks(config, batch["segments"], batch["position_ids"], dtype)
        text = batch.get("lm_columns") is not None
        out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                    logits_to_keep=torch.cat([batch["ebae_columns"], batch["ebar_columns"]]),
                    output_hidden_states=text, use_cache=False)
        ebae_logits, ebar_logits = out.logits.split([len(batch["ebae_columns"]), len(batch["ebar_columns"])], dim=1)
        return (out.hidden_states[-1][:, batch["lm_columns"]] if text else None), ebae_logits, ebar_logits

    def _two_forwards(self, model, batch):
        """Passage-side and query-side sequences (cut out of the combined one) with 2-D padding masks."""
        ids, pos, seg = batch["input_ids"], batch["position_ids"], batch["segments"]
        width = ids.shape[1]
        a_len, b_len = int((seg == EBAE).sum(1).max()), int((seg == EBAR).sum(1).max())
        query_cols = torch.cat([torch.arange(width - a_len - b_len), torch.arange(width - b_len, width)]).to(ids.device)
        text = batch.get("lm_columns") is not None
        passage = model(input_ids=ids[:, :width - b_len], attention_mask=(seg[:, :width - b_len] != PAD).long(),
                        position_ids=pos[:, :width - b_len], logits_to_keep=batch["ebae_columns"],
                        output_hidden_states=text, use_cache=False)
        query = model(input_ids=ids[:, query_cols], attention_mask=(seg[:, query_cols] != PAD).long(),
                      position_ids=pos[:, query_cols], logits_to_keep=batch["ebar_columns"] - a_len,
                      use_cache=False).logits
        return (passage.hidden_states[-1][:, batch["lm_columns"]] if text else None), passage.logits, query


def text_lm_loss(model: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The LM loss from final hidden states: chunked (no full logits) when the head is a plain linear map,
    else through the head (bias, logit soft-capping, or weights sharded away by ZeRO-3)."""
    head, config = unwrap(model).get_output_embeddings(), unwrap(model).config
    if head.bias is None and head.weight.numel() and getattr(config, "final_logit_softcapping", None) is None:
        return linear_cross_entropy(hidden, head.weight, labels)
    return lm_loss(head(hidden), labels)
