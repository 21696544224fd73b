"""An independent, hand-written LLaMA forward pass and LLaRA pooling, to check the encoder against."""
from __future__ import annotations

import torch


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def llama_final_hidden(model, ids: list[int]) -> torch.Tensor:
    """Final-norm hidden states ``[T, d]`` of one sequence, from the raw weights (float64)."""
    cfg = model.config
    w = {k: v.detach().double() for k, v in model.state_dict().items()}
    n_heads, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = cfg.hidden_size // n_heads
    theta = cfg.rope_parameters["rope_theta"]
    T = len(ids)
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    causal = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], cfg.rms_norm_eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, n_heads, head_dim).transpose(0, 1)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, n_kv, head_dim).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, n_kv, head_dim).transpose(0, 1)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        k, v = k.repeat_interleave(n_heads // n_kv, 0), v.repeat_interleave(n_heads // n_kv, 0)
        att = torch.softmax(q @ k.transpose(1, 2) / head_dim ** 0.5 + causal, dim=-1) @ v
        x = x + att.transpose(0, 1).reshape(T, -1) @ w[p + "self_attn.o_proj.weight"].T
        h = _rms(x, w[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    return _rms(x, w["model.norm.weight"], cfg.rms_norm_eps)


def llara_vector(model, ids: list[int], special_ids: list[int]) -> torch.Tensor:
    """Mean of the final hidden states at the special positions, L2-normalised."""
    hidden = llama_final_hidden(model, ids)
    rows = [i for i, t in enumerate(ids) if t in set(special_ids)]
    assert len(rows) == len(special_ids)
    vec = hidden[rows].mean(0)
    return vec / vec.norm()
