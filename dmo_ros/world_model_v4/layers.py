"""Transformer pieces shared by the tokenizer and the dynamics model: RMSNorm, attention (QK-norm, optional
rotary time positions and a key/value cache), MLP, pre-norm block.

Shapes: a sequence batch ``x`` is (N, L, W): N independent sequences of L tokens of width W.
Attention masks are boolean (L, L_k) or broadcastable, ``True`` = may attend (PyTorch SDPA's rule).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain (Zhang & Sennrich 2019)."""

    def __init__(self, size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(x: Tensor, positions: Tensor, base: float = 10_000.0) -> Tensor:
    """Rotary position embedding (Su et al. 2021) of ``x`` (..., L, D) at integer ``positions`` (L,).

    Attention scores of rotated queries and keys depend on position differences only, so keys cached at their
    absolute frame index stay valid as the window slides.
    """
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None]  # (L, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with QK RMS-normalisation; rotary positions and a KV cache when asked.

    Args:
        width: W, channels per token.
        heads: attention heads (W must be a multiple).
        rope: rotate queries and keys by their ``positions`` (the temporal layers: positions = frame index).
    """

    def __init__(self, width: int, heads: int, rope: bool = False) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.heads, self.head_dim, self.rope = heads, width // heads, rope
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None, positions: Tensor | None = None,
                past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend; returns the output (N, L, W) and this call's keys and values (N, heads, L, head_dim) each.

        Args:
            x: (N, L, W) tokens.
            mask: (L, L_past + L) bool, True = attend; None = full attention.
            positions: (L,) int positions of the tokens (needed with ``rope``).
            past: cached (keys, values) (N, heads, L_past, head_dim), already rotated; prepended to this call's.
        """
        n, length, width = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            if positions is None:
                raise ValueError("a rotary attention layer needs the tokens' positions")
            q, k = rotary(q, positions), rotary(k, positions)
        keys, values = k, v
        if past is not None:
            keys, values = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.out(out.transpose(1, 2).reshape(n, length, width)), (k, v)


class MLP(nn.Module):
    """Two-layer GELU feed-forward network of hidden size ``4 W``."""

    def __init__(self, width: int, expansion: int = 4) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, expansion * width), nn.Linear(expansion * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, width: int, heads: int, rope: bool = False) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(width), RMSNorm(width)
        self.attention = Attention(width, heads, rope=rope)
        self.mlp = MLP(width)

    def forward(self, x: Tensor, mask: Tensor | None = None, positions: Tensor | None = None,
                past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        attended, kv = self.attention(self.norm1(x), mask, positions, past)
        x = x + attended
        return x + self.mlp(self.norm2(x)), kv


__all__ = ["MLP", "Attention", "Block", "RMSNorm", "rotary"]
