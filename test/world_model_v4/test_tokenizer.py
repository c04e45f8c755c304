"""The tokenizer learns to reconstruct frames through its tanh bottleneck (tiny, seconds)."""

from __future__ import annotations

import torch

from dmo_ros.world_model_v4.config import TokenizerConfig
from dmo_ros.world_model_v4.tokenizer import FrameBatch, Tokenizer, to_model_range


def manifold_frames(batch: int, generator: torch.Generator, basis: torch.Tensor) -> torch.Tensor:
    """(B, 3, 16, 16) uint8 frames on a 3-D manifold: random mixtures of three fixed random images."""
    weights = torch.rand(batch, len(basis), generator=generator) * 2 - 1
    frames = torch.einsum("bk,kchw->bchw", weights, basis) * 0.5
    return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def test_shapes_and_patch_round_trip() -> None:
    tokenizer = Tokenizer(TokenizerConfig.preset("tiny"))
    frames = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(tokenizer.unpatchify(tokenizer.patchify(frames)), frames, rtol=0, atol=0)
    latents = tokenizer.encode(frames)
    assert latents.shape == (2, 4, 8) and latents.abs().max() <= 1
    assert tokenizer.decode(latents).shape == (2, 3, 16, 16)
    mask = tokenizer.draw_mask(1000, torch.device("cpu"))
    assert 0.1 < mask.float().mean() < 0.4  # E = mask_probability x max / 2 = 0.225


def test_reconstruction_learns_below_bound() -> None:
    """300 steps (~10 s of one CPU core) bring the error far below the best frame-independent guess (the mean)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    basis = torch.rand(3, 3, 16, 16, generator=generator) * 2 - 1
    tokenizer = Tokenizer(TokenizerConfig.preset("tiny", mask_probability=0.0))
    optimizer = torch.optim.AdamW(tokenizer.parameters(), lr=5e-3)
    for _ in range(300):
        loss, _ = tokenizer(FrameBatch(manifold_frames(32, generator, basis)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokenizer.eval()
    test = manifold_frames(64, torch.Generator().manual_seed(99), basis)
    with torch.no_grad():
        _, logs = tokenizer(FrameBatch(test))
    pixels = to_model_range(test)
    mean_frame_error = (pixels - pixels.mean(0, keepdim=True)).pow(2).mean()
    assert logs["mse"] < 0.35 * mean_frame_error, (logs["mse"], mean_frame_error)
