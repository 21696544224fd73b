"""The LM-head losses of a pretraining step, from final hidden states, with one vocabulary-sized buffer.

With Gemma 3's 262k vocabulary, vocabulary-sized tensors dominate a pretraining step: full logits over
the text, and the head weight's gradient, which autograd would build once per use of the weight (the
text's next-token head, the special columns' head, a tied input embedding) and then add up.

Here the head is applied chunk by chunk inside one autograd function. Each chunk's gradients (w.r.t.
its hidden states and the head weight) are taken in the forward pass while its logits are at hand, and
the weight's gradients of all losses are summed into a single buffer; the backward pass only scales.
The two LLaRA losses form their logits' gradient in place of the logits (one logits-sized tensor per
chunk instead of autograd's four, so chunks are larger and the matrix products efficient); any other
loss, or soft-capped logits, take the chunk's gradient through autograd. A tied input embedding adds
its few rows into the same buffer (``TiedEmbeddingGradient``): one vocabulary-sized gradient per step.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

CHUNK_ELEMENTS = 1 << 25  # float32 logit-sized values a chunk may hold at once (128 MiB)


class HeadTerm:
    """A loss over ``hidden [m, ..., d] @ weight.T``, split along dim 0: ``loss(logits, rows)`` returns the
    share of rows ``rows`` (a slice), already normalised for the whole term, so the shares add up."""

    copies = 4  # logits-sized tensors held while a chunk's gradient is taken by autograd

    def __init__(self, hidden: torch.Tensor, loss: Callable[[torch.Tensor, slice], torch.Tensor], weight: float = 1.0):
        self.hidden, self.loss, self.weight = hidden, loss, weight

    def loss_and_grad(self, logits: torch.Tensor, rows: slice, softcap: float | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """A chunk's loss and ``d(weight * loss) / d logits`` (``logits`` before soft-capping; may be
        overwritten)."""
        with torch.enable_grad():
            logits.requires_grad_()
            loss = self.loss(soft_capped(logits, softcap), rows)
            (grad,) = torch.autograd.grad(self.weight * loss, logits)
        return loss.detach(), grad


class NextTokenTerm(HeadTerm):
    """Next-token cross-entropy with per-token weights (``weighted_nll``); gradient: softmax minus one-hot."""

    copies = 1

    def __init__(self, hidden: torch.Tensor, labels: torch.Tensor, token_weights: torch.Tensor, weight: float = 1.0):
        super().__init__(hidden, lambda logits, rows: weighted_nll(logits, labels[rows], token_weights[rows]), weight)
        self.labels, self.token_weights = labels, token_weights

    def loss_and_grad(self, logits, rows, softcap):
        if softcap is not None:
            return super().loss_and_grad(logits, rows, softcap)
        labels, token_weights = self.labels[rows], self.token_weights[rows]
        shifted = logits.sub_(logits.amax(dim=-1, keepdim=True))  # in place from here on: no temporaries
        label_logits = shifted.gather(1, labels[:, None]).squeeze(1)
        exp = shifted.exp_()
        total = exp.sum(dim=-1)
        loss = ((total.log() - label_logits) * token_weights).sum()
        grad = exp.mul_((token_weights * self.weight / total)[:, None])  # weighted softmax
        grad[torch.arange(len(labels), device=labels.device), labels] -= token_weights * self.weight
        return loss, grad


def weighted_nll(logits: torch.Tensor, labels: torch.Tensor, token_weights: torch.Tensor) -> torch.Tensor:
    """``sum(token_weights * -log p(label))`` over ``[m, V]`` logits: a chunk of tokens adds its share.
    (Log-sum-exp minus the label's logit: ``F.cross_entropy`` in float32 is 1e-5 off over 262k logits.)"""
    logits = logits.float()
    return ((logits.logsumexp(dim=-1) - logits.gather(1, labels[:, None]).squeeze(1)) * token_weights).sum()


class BagOfWordsTerm(HeadTerm):
    """EBAE/EBAR (``bag_of_words_share``); gradient: that of the pooled log-softmax, routed to the positions
    that hold each maximum (shared equally between ties, as autograd's ``amax`` does)."""

    copies = 1

    def __init__(self, hidden: torch.Tensor, targets: torch.Tensor, weight: float = 1.0):
        rows_with_targets = count_rows_with_targets(targets)
        super().__init__(hidden, lambda logits, rows: bag_of_words_share(logits, targets[rows], rows_with_targets),
                         weight)
        self.targets, self.rows_with_targets = targets, rows_with_targets

    def loss_and_grad(self, logits, rows, softcap):
        if softcap is not None:
            return super().loss_and_grad(logits, rows, softcap)
        targets = self.targets[rows]
        pooled = logits.amax(dim=1)
        logp = torch.log_softmax(pooled, dim=-1)
        loss = _bag_of_words_from_log_probs(logp, targets, self.rows_with_targets)
        present = targets >= 0
        grad_pooled = logp.exp_().mul_(present.any(1, keepdim=True))  # softmax - targets / count, per row
        grad_pooled.scatter_add_(1, targets.clamp(min=0), -(present / present.sum(1, keepdim=True).clamp(min=1)))
        grad_pooled.mul_(self.weight / max(1, self.rows_with_targets))
        at_max = logits.eq_(pooled[:, None])  # 1.0 where a position holds its column's maximum
        return loss, at_max.mul_((grad_pooled / at_max.sum(1))[:, None])


def bag_of_words_share(logits: torch.Tensor, targets: torch.Tensor, rows_with_targets: int) -> torch.Tensor:
    """Max-pool ``[n, k, V]`` logits over the k positions, log-softmax, mean ``-log p`` over each row's
    distinct targets (``-1`` = none); summed over these rows, divided by the batch's rows with targets."""
    return _bag_of_words_from_log_probs(torch.log_softmax(logits.float().amax(dim=1), dim=-1), targets,
                                        rows_with_targets)


def count_rows_with_targets(targets: torch.Tensor) -> int:
    """Rows of a ``[n, t]`` target matrix (``-1`` = none) with any target: the bag-of-words denominator."""
    return int((targets >= 0).any(1).sum())


def _bag_of_words_from_log_probs(logp: torch.Tensor, targets: torch.Tensor, rows_with_targets: int) -> torch.Tensor:
    present = targets >= 0
    per_row = -(logp.gather(1, targets.clamp(min=0)) * present).sum(1) / present.sum(1).clamp(min=1)
    return per_row.sum() / max(1, rows_with_targets)


def product_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype of the head's matrix products: bf16 under bf16 autocast, as autocast runs any ``Linear``
    (the head is two thirds of a bf16-autocast pretraining step with a 262k vocabulary when kept in
    float32); otherwise the weight's own. fp16 autocast keeps float32: the logits' gradients are formed
    before loss scaling, and a 262k-way softmax's small probabilities would underflow in fp16."""
    device = weight.device.type
    if (weight.dtype == torch.float32 and torch.is_autocast_enabled(device)
            and torch.get_autocast_dtype(device) == torch.bfloat16):
        return torch.bfloat16
    return weight.dtype


def _losses_and_grads(weight, softcap, terms, hiddens, needs_weight: bool, needs_hiddens: list[bool],
                      dtype: torch.dtype):
    """Products in ``dtype`` (no float32 copy of a bf16 head), losses and logits' gradients in float32;
    the weight's gradient is accumulated in ``dtype``, allocated by the first chunk, and returned in the
    weight's dtype."""
    w = weight.detach().to(dtype)
    grad_weight = None
    grad_hiddens, values = [], []
    for term, hidden, needs_hidden in zip(terms, hiddens, needs_hiddens):
        grad_hidden = torch.empty_like(hidden) if needs_hidden else None
        value = torch.zeros((), dtype=torch.float32, device=hidden.device)
        copies = term.copies if softcap is None else HeadTerm.copies  # soft-capped: autograd's gradient
        for rows in _chunks(len(hidden), copies * hidden[:1].numel() // hidden.shape[-1] * w.shape[0]):
            h = hidden[rows].detach().to(w.dtype)
            logits = (h @ w.T).float()
            if not (needs_weight or needs_hidden):
                value += term.loss(soft_capped(logits, softcap), rows)
                continue
            loss, grad_logits = term.loss_and_grad(logits, rows, softcap)
            value += loss
            grad_logits = grad_logits.to(w.dtype)
            if grad_hidden is not None:
                grad_hidden[rows] = (grad_logits @ w).to(hidden.dtype)
            if needs_weight:
                flat_grad, flat_h = grad_logits.reshape(-1, w.shape[0]).T, h.reshape(-1, w.shape[1])
                grad_weight = flat_grad @ flat_h if grad_weight is None else grad_weight.addmm_(flat_grad, flat_h)
            del logits, loss, grad_logits
        grad_hiddens.append(grad_hidden)
        values.append(value)
    if needs_weight:
        grad_weight = torch.zeros_like(weight) if grad_weight is None else grad_weight.to(weight.dtype)
    values = torch.stack(values)
    return weighted_sum(values, terms), values, (grad_weight, grad_hiddens)


def _chunks(rows: int, elements_per_row: int) -> list[slice]:
    """Row slices of at most ``CHUNK_ELEMENTS`` each, of near-equal sizes (no small, inefficient last one)."""
    count = -(-rows * max(1, elements_per_row) // CHUNK_ELEMENTS)
    size = -(-rows // max(1, count))
    return [slice(start, start + size) for start in range(0, rows, max(1, size))]


class _HeadLosses(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, softcap: float | None, tied: TiedEmbeddingGradient | None,
                grad_enabled: bool, terms: tuple[HeadTerm, ...], *hiddens: torch.Tensor):
        needs = [grad_enabled and needed for needed in ctx.needs_input_grad]
        dtype = product_dtype(weight)
        with torch.autocast(weight.device.type, enabled=False):  # products in ``dtype``, losses in float32
            total, values, grads = _losses_and_grads(weight, softcap, terms, hiddens, needs[0],
                                                     needs[len(needs) - len(hiddens):], dtype)
        ctx.tied = tied
        ctx.grads = grads  # intermediates, not inputs/outputs: kept on ctx, dropped in backward
        ctx.mark_non_differentiable(values)
        return total, values

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor, _grad_values: torch.Tensor):
        grad_weight, grad_hiddens = ctx.grads
        del ctx.grads  # scaled in place and released: no second vocabulary-sized tensor
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(grad_total.to(grad_weight.dtype))
            if ctx.tied is not None and ctx.tied.rerouted:  # the embedding's backward adds its rows, returns it
                ctx.tied.head_grad, grad_weight = grad_weight, None
        grad_hiddens = [g.mul_(grad_total.to(g.dtype)) if g is not None else None for g in grad_hiddens]
        return grad_weight, None, None, None, None, *grad_hiddens


def soft_capped(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """Logit soft-capping as Gemma 2 applies it after the head (``cap * tanh(logits / cap)``)."""
    return logits if cap is None else torch.tanh(logits / cap) * cap


def head_losses(head: torch.nn.Linear, softcap: float | None, terms: list[HeadTerm],
                tied: TiedEmbeddingGradient | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of term.weight * loss, the unweighted losses)`` of the LM ``head`` (then ``softcap``) applied
    to each term's hidden states; the sum is differentiable (head weight, hidden states), the losses are
    for logging. ``tied``: from ``tied_embedding_gradient`` around the forward pass that made the hidden
    states. A head with a bias, or with its weight sharded away (ZeRO-3), is applied as a module.
    """
    if head.bias is None and head.weight.numel() > 0:
        hiddens = (t.hidden for t in terms)
        return _HeadLosses.apply(head.weight, softcap, tied, torch.is_grad_enabled(), tuple(terms), *hiddens)
    values = torch.stack([t.loss(soft_capped(head(t.hidden).float(), softcap), slice(None)) for t in terms])
    return weighted_sum(values, terms), values.detach()


def weighted_sum(values: torch.Tensor, terms: list[HeadTerm] | tuple[HeadTerm, ...]) -> torch.Tensor:
    return (values * torch.tensor([t.weight for t in terms], device=values.device)).sum()


class TiedEmbeddingGradient:
    """Adds the input embedding's gradient of a tied weight into the head's, in place.

    Autograd would build the embedding's gradient as a dense vocabulary-sized tensor (or, for a sparse
    embedding, add it to the head's out of place: a copy of one). Instead the embedding's output is
    re-routed through ``_EmbeddingRows``, whose backward takes the gradient of just the batch's rows
    (sparse) and adds it into the head's gradient, handed over by the head's backward. The weight then
    receives one dense gradient, in autograd's usual order, as optimisers, DDP and ZeRO expect.
    """

    def __init__(self, embedding: torch.nn.Embedding):
        self.embedding = embedding
        self.head_grad: torch.Tensor | None = None
        self.rerouted = 0  # embedding calls re-routed, whose backward passes are still to come

    def reroute(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Forward hook on the embedding."""
        if not args or not torch.is_tensor(output):
            return None  # called another way: autograd's own gradient (correct, just not in place)
        self.rerouted += 1
        return _EmbeddingRows.apply(self.embedding.weight, output.detach(), args[0], self)

    def weight_grad(self, ids: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor | None:
        with torch.enable_grad():  # the embedding again, for just the rows' (sparse) gradient
            self.embedding.sparse = True
            try:
                (rows,) = torch.autograd.grad(self.embedding(ids), self.embedding.weight, grad_output)
            finally:
                self.embedding.sparse = False
        self.rerouted -= 1
        if self.head_grad is None:
            return rows
        self.head_grad.add_(rows)
        if self.rerouted:  # another forward's rows (two-forward mode) are still to be added
            return None
        head_grad, self.head_grad = self.head_grad, None  # released: autograd's reference is the only one
        return head_grad


class _EmbeddingRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, output: torch.Tensor, ids: torch.Tensor, tied: TiedEmbeddingGradient):
        ctx.ids, ctx.tied = ids, tied
        return output.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return ctx.tied.weight_grad(ctx.ids, grad_output), None, None, None


@contextmanager
def tied_embedding_gradient(model: torch.nn.Module) -> Iterator[TiedEmbeddingGradient | None]:
    """Around a training forward pass: a ``TiedEmbeddingGradient`` for ``head_losses`` when the input
    embedding is tied to the head and trained, else ``None``."""
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = (isinstance(embedding, torch.nn.Embedding) and head is not None and embedding.weight is head.weight
            and embedding.weight.requires_grad and embedding.weight.numel() > 0  # not sharded away (ZeRO-3)
            and not embedding.sparse and torch.is_grad_enabled())
    if not tied:
        yield None
        return
    gradient = TiedEmbeddingGradient(embedding)
    handle = embedding.register_forward_hook(gradient.reroute)
    try:
        yield gradient
    finally:
        handle.remove()
