"""torchrun worker (gloo, CPU): cross-device InfoNCE under DDP against one process on the whole batch.

Run as ``torchrun --nproc_per_node 2 -m tests.support.finetune_ddp_worker MODEL_DIR OUT_JSON``. Each rank takes its
slice of a fixed batch; rank 0 also computes the single-process reference and writes the comparison.
By default the gradients are 1/world size of the single-process ones (as the reference code's); with
``scale_cross_device_gradients`` (here for plain DDP and GradCache) they equal them.
"""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from llara_retrieval.train.finetune.model import gradcache_step  # noqa: E402
from tests.support.finetune import fixed_items, grads, tiny_contrastive  # noqa: E402

N_QUERIES, GROUP = 4, 3


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (sorted(a.keys() ^ b.keys()))[:5]
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def main(model_dir: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model, collate = tiny_contrastive(model_dir, cross_device=True)
    items = fixed_items(N_QUERIES, GROUP)
    per_rank = N_QUERIES // size
    local = collate(items[rank * per_rank:(rank + 1) * per_rank])
    ddp = DDP(model)

    ddp(**local)["loss"].backward()
    unscaled_grads = grads(model)  # the reference's: 1/size of one process's gradient

    model.zero_grad(set_to_none=True)
    model.scale_cross_device_gradients = True
    loss = ddp(**local)["loss"]
    loss.backward()
    ddp_loss, ddp_grads = loss.item(), grads(model)

    model.zero_grad(set_to_none=True)
    cached = gradcache_step(ddp, model, local["query_ids"], local["passage_ids"], chunk_size=1, no_sync=ddp.no_sync)
    gc_loss, gc_grads = cached.item(), grads(model)

    losses = [None] * size
    dist.all_gather_object(losses, (ddp_loss, gc_loss))
    if rank == 0:
        ref, _ = tiny_contrastive(model_dir, cross_device=False)
        ref.load_state_dict(model.state_dict())
        ref_loss = ref(**collate(items))["loss"]
        ref_loss.backward()
        ref_grads = grads(ref)
        scale = max(float(g.abs().max()) for g in ref_grads.values())
        Path(out).write_text(json.dumps({
            "reference_loss": ref_loss.item(), "rank_losses": losses,
            "ddp_grad_max_diff": max_diff(ddp_grads, ref_grads),
            "gradcache_grad_max_diff": max_diff(gc_grads, ref_grads),
            "unscaled_grad_max_diff": max_diff(unscaled_grads, {k: g / size for k, g in ref_grads.items()}),
            "grad_scale": scale, "n_grads": len(ref_grads)}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
