"""Next-token loss straight from hidden states, chunk by chunk, so ``[tokens, vocabulary]`` logits never
exist at once: with Gemma 3's 262k vocabulary they are the largest tensor of a pretraining step.

Each chunk's gradients (w.r.t. the hidden states and the head weight) are computed in the forward
pass, while its logits are at hand; the backward pass only scales them. Same loss and gradients as
``F.cross_entropy`` on the full logits, at the cost of one chunk of logits instead of all of them.
"""
from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 26  # float32 logits per chunk: 256 MiB


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, token_weights: torch.Tensor,
                rows_per_chunk: int) -> torch.Tensor:
        w32 = weight.float()
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(w32) if ctx.needs_input_grad[1] else None
        for start in range(0, hidden.shape[0], rows_per_chunk):
            rows = slice(start, start + rows_per_chunk)
            h, y, tw = hidden[rows].float(), labels[rows], token_weights[rows]
            logp = torch.log_softmax(h @ w32.T, dim=-1)
            loss -= (logp.gather(1, y[:, None]).squeeze(1) * tw).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            grad_logits = logp.exp_()  # softmax, in place: d(-log p_y)/d logits = softmax - onehot(y)
            grad_logits[torch.arange(len(y), device=y.device), y] -= 1
            grad_logits *= tw[:, None]
            if grad_hidden is not None:
                grad_hidden[rows] = (grad_logits @ w32).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.T, h)
        ctx.weight_dtype = weight.dtype
        ctx.grads = grad_hidden, grad_weight  # intermediates, not inputs/outputs: kept on ctx, dropped in backward
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        # Scaled in place and released from ctx, so autograd can add the embedding's gradient of a tied
        # weight into this buffer instead of allocating a third vocabulary-sized tensor.
        grad_hidden, grad_weight = ctx.grads
        del ctx.grads
        if grad_hidden is not None:
            grad_hidden.mul_(grad_loss.to(grad_hidden.dtype))
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(grad_loss).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of ``hidden [n, k, d] @ weight[V, d]^T`` against ``labels [n, k]``
    (``-100`` = ignored), averaged over each row's tokens, then over the rows that have any
    (as ``pretrain_model.lm_loss`` does on full logits)."""
    valid = labels != -100
    counts = valid.sum(1)
    rows = counts > 0
    if not bool(rows.any()):
        return hidden.sum() * 0.0
    per_token = (1.0 / (counts.clamp(min=1).float() * rows.sum().float()))[:, None].expand_as(labels)
    rows_per_chunk = max(1, CHUNK_ELEMENTS // weight.shape[0])
    return _LinearCrossEntropy.apply(hidden[valid], weight, labels[valid], per_token[valid], rows_per_chunk)
