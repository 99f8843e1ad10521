"""Fused attention for HF ImageGPT, which ships eager attention only.

Eager attention materialises a (batch, heads, 1024, 1024) score tensor per layer; at ImageGPT-Large's
batch 8 x 1024 that alone runs an 80 GB card out of memory. `F.scaled_dot_product_attention` computes the
same softmax(QK^T * scale) V without storing the scores (flash / memory-efficient kernels on GPU, a fused
kernel on CPU). We swap it in per module, keeping HF's weights, cache handling and outputs unchanged.
"""

from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F


def _sdpa_attn(self, query, key, value, attention_mask=None):
    scale = 1.0 / math.sqrt(value.size(-1)) if self.scale_attn_weights else 1.0
    if self.scale_attn_by_inverse_layer_idx:
        scale /= float(self.layer_idx + 1)
    q_len, k_len = query.size(-2), key.size(-2)
    mask, is_causal = None, False
    if not self.is_cross_attention:
        if attention_mask is None and q_len == k_len:
            is_causal = True
        elif q_len > 1 or attention_mask is not None:
            # a chunk of queries after cached keys (or an explicit mask): the causal band of HF's own buffer
            mask = self.bias[:, :, k_len - q_len:k_len, :k_len]
    if attention_mask is not None:
        additive = attention_mask.to(query.dtype)
        mask = additive if mask is None else torch.where(mask, additive, torch.finfo(query.dtype).min)
    if self.reorder_and_upcast_attn:  # HF computes these scores in fp32; so do we
        out = F.scaled_dot_product_attention(query.float(), key.float(), value.float(), attn_mask=mask,
                                             dropout_p=self.attn_dropout.p if self.training else 0.0,
                                             is_causal=is_causal, scale=scale).to(value.dtype)
    else:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                             dropout_p=self.attn_dropout.p if self.training else 0.0,
                                             is_causal=is_causal, scale=scale)
    return out, None


def use_fused_attention(model) -> None:
    """Route every ImageGPT attention layer of `model` through scaled_dot_product_attention (in place)."""
    from transformers.models.imagegpt.modeling_imagegpt import ImageGPTAttention

    for module in model.modules():
        if isinstance(module, ImageGPTAttention):
            module._attn = types.MethodType(_sdpa_attn, module)
            module._upcast_and_reordered_attn = module._attn


def use_eager_attention(model) -> None:
    """Undo use_fused_attention (back to HF's own code)."""
    from transformers.models.imagegpt.modeling_imagegpt import ImageGPTAttention

    for module in model.modules():
        if isinstance(module, ImageGPTAttention):
            module.__dict__.pop("_attn", None)
            module.__dict__.pop("_upcast_and_reordered_attn", None)
