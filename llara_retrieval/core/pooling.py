"""LLaRA pooling: mean of the final-norm hidden states at the special-token positions, L2-normalised.

Positions are found by token id, not by slicing the last 8 columns, so the result is the same with
left or right padding.
"""
from __future__ import annotations

import torch


def special_token_mask(input_ids: torch.Tensor, special_ids: list[int]) -> torch.Tensor:
    """Boolean ``[batch, seq]`` mask of the positions holding one of ``special_ids``."""
    ids = torch.as_tensor(special_ids, device=input_ids.device)
    return torch.isin(input_ids, ids)


def pool_special_tokens(hidden: torch.Tensor, input_ids: torch.Tensor, special_ids: list[int],
                        normalize: bool = True) -> torch.Tensor:
    """Embeddings ``[batch, dim]`` from hidden states ``[batch, seq, dim]`` (computed in fp32)."""
    mask = special_token_mask(input_ids, special_ids)
    counts = mask.sum(dim=1)
    if bool((counts != len(special_ids)).any()):
        raise ValueError(f"each sequence must hold each of the special tokens {special_ids} exactly once; "
                         f"found counts {counts.tolist()}")
    weights = mask.to(torch.float32) / counts.unsqueeze(1).to(torch.float32)
    pooled = torch.einsum("bs,bsd->bd", weights, hidden.to(torch.float32))
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def transformer_body(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder stack without the LM head (unwrapping PEFT), whose output is after the final norm."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model.base_model
