"""The contrastive (InfoNCE) training model: the same embeddings as LlaraEncoder, with gradients.

Embeddings are ``pool_special_tokens`` over the decoder stack's final-norm hidden states, exactly as
:meth:`LlaraEncoder.embed_ids` computes them, so what is trained is what is served.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F

from llara_retrieval.core.pooling import pool_special_tokens, transformer_body
from llara_retrieval.core.prompts import Side


def info_nce(q: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean cross-entropy of ``q·pᵀ/τ`` against each query's positive.

    ``p`` holds one group per query, in query order: positive first, then its hard negatives; every
    other passage in ``p`` (other groups) is an in-batch negative. The scores are computed in float32 even
    under bf16 autocast: divided by τ = 0.01 they reach ±100, where bf16 steps are 0.5 apart, so a bf16
    product would round away the margins between a positive and its hard negatives (the cost is negligible:
    one small matrix).
    """
    group_size, rest = divmod(p.shape[0], q.shape[0])
    if rest or group_size < 1:
        raise ValueError(f"{p.shape[0]} passages do not form equal groups for {q.shape[0]} queries")
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(q.device.type, enabled=False):
        scores = q.to(dtype) @ p.to(dtype).T / temperature
    target = torch.arange(q.shape[0], device=q.device) * group_size
    return F.cross_entropy(scores, target)


def world() -> tuple[int, int]:
    """(rank, world size), (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_keep_local(t: torch.Tensor) -> torch.Tensor:
    """All ranks' ``t`` concatenated in rank order; only this rank's slice carries gradients.

    Every rank must pass the same shape (same per-device batch and group size).
    """
    rank, size = world()
    if size == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(size)]
    dist.all_gather(parts, t.detach().contiguous())
    parts[rank] = t
    return torch.cat(parts, dim=0)


def scale_grad(loss: torch.Tensor, factor: float) -> torch.Tensor:
    """Same value as ``loss``, gradients multiplied by ``factor``.

    With cross-device negatives every rank computes the full loss but back-propagates only through its
    own embeddings; DDP then averages over ranks, so the gradient is 1/world size of the single-process
    gradient (as in the reference code) unless scaled by the world size (the logged loss stays the true one).
    """
    return loss if factor == 1 else loss * factor - loss.detach() * (factor - 1)


def freeze_unused_head(lm: torch.nn.Module) -> None:
    """Freeze an untied LM head: embeddings never use it, and DDP rejects parameters without gradients."""
    head, inputs = lm.get_output_embeddings(), lm.get_input_embeddings()
    if head is not None and head.weight is not inputs.weight:
        head.weight.requires_grad_(False)


class ContrastiveModel(torch.nn.Module):
    """Wraps a causal LM (plain or PEFT) for InfoNCE training.

    ``forward(query_ids=, passage_ids=)`` returns ``{"loss"}``; with only one side given it returns that
    side's embeddings (GradCache runs its chunks through here, so DDP sees every forward).
    ``scale_cross_device_gradients`` multiplies the gradients by the world size under cross-device
    negatives, so they equal one process's on the whole global batch (off: the reference's 1/world size).
    """

    def __init__(self, lm: torch.nn.Module, special_ids: dict[str, list[int]], temperature: float = 0.01,
                 negatives_cross_device: bool = False, scale_cross_device_gradients: bool = False):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.lm = lm
        freeze_unused_head(lm)
        self.special_ids = special_ids
        self.temperature = temperature
        self.negatives_cross_device = negatives_cross_device
        self.scale_cross_device_gradients = scale_cross_device_gradients

    def activation_checkpointing_enable(self, **kwargs) -> None:
        """Called by the Trainer for ``--gradient_checkpointing``: checkpoint the wrapped LM's layers."""
        self.lm.activation_checkpointing_enable(**kwargs)

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        """The same under the name the Trainer of transformers releases before ``activation_checkpointing_enable``
        calls (e.g. 5.17, on the GPU machines lent to this project)."""
        self.lm.gradient_checkpointing_enable(**kwargs)

    def embed(self, input_ids: torch.Tensor, side: Side) -> torch.Tensor:
        hidden = transformer_body(self.lm)(input_ids=input_ids, use_cache=False).last_hidden_state
        return pool_special_tokens(hidden, input_ids, self.special_ids[side])

    def forward(self, query_ids: torch.Tensor | None = None, passage_ids: torch.Tensor | None = None) -> dict:
        q = self.embed(query_ids, "query") if query_ids is not None else None
        p = self.embed(passage_ids, "passage") if passage_ids is not None else None
        if q is None or p is None:
            return {"embeddings": q if q is not None else p}
        return {"loss": self.loss(q, p)}

    def loss(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """InfoNCE over this batch, or over all ranks' batches with cross-device negatives."""
        if not self.negatives_cross_device:
            return info_nce(q, p, self.temperature)
        _, size = world()
        loss = info_nce(gather_keep_local(q), gather_keep_local(p), self.temperature)
        return scale_grad(loss, size) if self.scale_cross_device_gradients else loss


def rng_state() -> dict:
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": {d: torch.cuda.get_rng_state(d) for d in devices}}


@contextlib.contextmanager
def replay_rng(state: dict) -> Iterator[None]:
    """Run the block from a recorded RNG state (same dropout masks), then restore the current one."""
    with torch.random.fork_rng(devices=list(state["cuda"])):
        torch.set_rng_state(state["cpu"])
        for d, s in state["cuda"].items():
            torch.cuda.set_rng_state(s, d)
        yield


def gradcache_step(call: Callable[..., dict], module: ContrastiveModel, query_ids: torch.Tensor,
                   passage_ids: torch.Tensor, chunk_size: int, loss_scale: float = 1.0,
                   loss_backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
                   no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> torch.Tensor:
    """One GradCache step: the full batch's loss and gradients, with the activations of one chunk at a time.

    1. embed every chunk without a graph (recording each chunk's RNG state);
    2. compute the loss on those embeddings and back-propagate it to the embeddings only;
    3. re-embed each chunk with a graph (replaying its RNG) and back-propagate the cached gradient.
    ``call`` is the (possibly DDP-wrapped) model; ``no_sync`` defers DDP's all-reduce to the last chunk;
    ``loss_backward`` may apply a loss scaler (it runs once, on the loss); returns the unscaled loss.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    chunks = [("query", c) for c in query_ids.split(chunk_size)] + [("passage", c) for c in passage_ids.split(chunk_size)]
    states, reps = [], []
    with torch.no_grad():
        for side, ids in chunks:
            states.append(rng_state())
            reps.append(call(**{f"{side}_ids": ids})["embeddings"])
    reps = [r.detach().requires_grad_() for r in reps]
    n_query_chunks = len(query_ids.split(chunk_size))
    loss = module.loss(torch.cat(reps[:n_query_chunks]), torch.cat(reps[n_query_chunks:]))
    loss_backward(loss * loss_scale)
    for i, ((side, ids), state, rep) in enumerate(zip(chunks, states, reps)):
        with (no_sync() if i < len(chunks) - 1 else contextlib.nullcontext()), replay_rng(state):
            emb = call(**{f"{side}_ids": ids})["embeddings"]
            torch.autograd.backward(emb, grad_tensors=rep.grad)
    return loss.detach()
