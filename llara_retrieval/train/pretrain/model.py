"""The LLaRA adaptation loss: EBAE + EBAR (+ optional next-token LM) from one forward pass.

One forward over ``prefix text ebae_suffix ebar_suffix`` with a 4-D mask in which the EBAR suffix sees
the text and itself but not the EBAE suffix, and restarts its position ids right after the text: the
two branches then get exactly the hidden states of two separate forwards. The LM head is applied only
to the 16 special columns (and, when the LM weight is non-zero, to the text for the next-token loss),
chunk by chunk from the final hidden states (``head_losses``), never holding full-vocabulary logits.
Attention kernels that cannot take a 4-D mask (flash attention, flex) use two forwards instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from llara_retrieval.train.pretrain.data import EBAE, EBAR, PAD, SHARED
from llara_retrieval.train.pretrain.head_losses import (
    BagOfWordsTerm,
    NextTokenTerm,
    bag_of_words_share,
    count_rows_with_targets,
    head_losses,
    tied_embedding_gradient,
    weighted_nll,
)
from llara_retrieval.train.trainer import unwrap

MASK_4D_IMPLEMENTATIONS = ("eager", "sdpa")


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
    """The EBAE/EBAR loss of full ``[n, k, V]`` logits: the mean over rows that have targets."""
    return bag_of_words_share(logits, targets, count_rows_with_targets(targets))


LM_MEANS = ("token", "row")
BOW_WEIGHTINGS = ("reference", "fixed")


def lm_token_weights(labels: torch.Tensor, mean: str = "token") -> torch.Tensor:
    """Per-token weights of the next-token loss over a micro-batch.

    ``"token"``: the mean over all its text tokens, as the reference (``CrossEntropyLoss()`` on the
    flattened batch), so long texts weigh more. ``"row"``: each row's tokens average, then the rows
    that have any, so every text weighs the same whatever its length.
    """
    valid = labels != -100
    if mean == "token":
        return valid / valid.sum().clamp(min=1)
    if mean != "row":
        raise ValueError(f"lm mean must be one of {LM_MEANS}, not {mean!r}")
    counts = valid.sum(1, keepdim=True)
    return valid / (counts.clamp(min=1) * (counts > 0).sum().clamp(min=1))


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, mean: str = "token") -> torch.Tensor:
    """Next-token cross-entropy of full ``[n, k, V]`` logits against ``labels [n, k]`` (``-100`` = none)."""
    valid = labels != -100
    return weighted_nll(logits[valid], labels[valid], lm_token_weights(labels, mean)[valid])


def branch_weights(ebae_weight: float, ebar_weight: float, summarize_targets: torch.Tensor,
                   predict_targets: torch.Tensor, weighting: str = "reference") -> tuple[float, float]:
    """EBAE and EBAR weights for one micro-batch.

    ``"reference"``: when only one branch has targets in the micro-batch (e.g. a document's last chunk,
    which has no next text), it gets both weights, as the reference code (its bag-of-words loss is the
    mean of the two losses present, else the one present: 0.1 instead of 0.05). ``"fixed"``: always
    the weights given.
    """
    if weighting not in BOW_WEIGHTINGS:
        raise ValueError(f"bag-of-words weighting must be one of {BOW_WEIGHTINGS}, not {weighting!r}")
    if weighting == "reference":
        has_ebae = count_rows_with_targets(summarize_targets) > 0
        has_ebar = count_rows_with_targets(predict_targets) > 0
        if has_ebae != has_ebar:
            total = ebae_weight + ebar_weight
            return (total, ebar_weight) if has_ebae else (ebae_weight, total)
    return ebae_weight, ebar_weight


@dataclass
class PretrainLoss:
    """``loss = lm_weight * L_LM + ebae_weight * L_EBAE + ebar_weight * L_EBAR`` (reference: 1, .05, .05).

    ``lm_mean`` and ``bow_weighting`` default to the reference's rules (``lm_token_weights``,
    ``branch_weights``); ``"row"`` and ``"fixed"`` are the alternatives. The forward pass yields final
    hidden states at the special (and text) columns only; the LM head and the three losses are then
    taken chunk by chunk (``head_losses``), and a tied input embedding adds its rows into the head's
    gradient, so a step holds one vocabulary-sized gradient instead of one per use.
    """

    ebae_weight: float = 0.05
    ebar_weight: float = 0.05
    lm_weight: float = 1.0
    single_forward: bool = True
    lm_mean: str = "token"
    bow_weighting: str = "reference"

    def __call__(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        inner = unwrap(model)
        forward = self._one_forward if self.single_forward and supports_4d_mask(inner.config) else self._two_forwards
        with tied_embedding_gradient(inner) as tied:
            text, ebae, ebar = forward(model, batch)
        weights = branch_weights(self.ebae_weight, self.ebar_weight, batch["summarize_targets"],
                                 batch["predict_targets"], self.bow_weighting)
        terms = {"ebae": BagOfWordsTerm(ebae, batch["summarize_targets"], weights[0]),
                 "ebar": BagOfWordsTerm(ebar, batch["predict_targets"], weights[1])}
        if text is not None:
            labels = batch["lm_labels"]
            valid = labels != -100
            terms["lm"] = NextTokenTerm(text[valid], labels[valid], lm_token_weights(labels, self.lm_mean)[valid],
                                        self.lm_weight)
        softcap = getattr(inner.config, "final_logit_softcapping", None)
        total, values = head_losses(inner.get_output_embeddings(), softcap, list(terms.values()), tied)
        return {"loss": total, **dict(zip(terms, values))}

    @staticmethod
    def _final_hidden(model, **inputs) -> torch.Tensor:
        """Final (normed) hidden states; the head is skipped (an empty ``logits_to_keep``)."""
        keep = torch.zeros(0, dtype=torch.long, device=inputs["input_ids"].device)
        return model(**inputs, logits_to_keep=keep, output_hidden_states=True, use_cache=False).hidden_states[-1]

    def _one_forward(self, model, batch):
        config = unwrap(model).config
        dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        mask = attention_masks(config, batch["segments"], batch["position_ids"], dtype)
        hidden = self._final_hidden(model, input_ids=batch["input_ids"], attention_mask=mask,
                                    position_ids=batch["position_ids"])
        text = hidden[:, batch["lm_columns"]] if batch.get("lm_columns") is not None else None
        return text, hidden[:, batch["ebae_columns"]], hidden[:, batch["ebar_columns"]]

    def _two_forwards(self, model, batch):
        """Passage-side and query-side sequences (cut out of the combined one) with 2-D padding masks."""
        ids, pos, seg = batch["input_ids"], batch["position_ids"], batch["segments"]
        width = ids.shape[1]
        a_len, b_len = int((seg == EBAE).sum(1).max()), int((seg == EBAR).sum(1).max())
        query_cols = torch.cat([torch.arange(width - a_len - b_len), torch.arange(width - b_len, width)]).to(ids.device)
        passage = self._final_hidden(model, input_ids=ids[:, :width - b_len],
                                     attention_mask=(seg[:, :width - b_len] != PAD).long(),
                                     position_ids=pos[:, :width - b_len])
        query = self._final_hidden(model, input_ids=ids[:, query_cols],
                                   attention_mask=(seg[:, query_cols] != PAD).long(), position_ids=pos[:, query_cols])
        text = passage[:, batch["lm_columns"]] if batch.get("lm_columns") is not None else None
        return text, passage[:, batch["ebae_columns"]], query[:, batch["ebar_columns"] - a_len]
