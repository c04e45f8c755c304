"""DreamerV4-style world model speed: imagined frames/s with and without the KV cache, per context length.

For each ``--contexts`` value L, B episodes are prefilled with L - 1 random frames (the cache holds at most
``context - 1`` past frames), then ``WorldModelV4Env.step`` imagines frames: with the cache, each frame costs
the ``sampling_steps`` denoising passes and one commit pass over *one* frame's tokens attending to the cached
keys (O(tokens x context) in the temporal layers); without it, every pass recomputes the whole window of L
frames through every layer (O(tokens x context) per layer *and* the full window's MLPs). Random weights: the
speed does not depend on training. Warm-up steps come first; CUDA is synchronised around timed intervals.

    .venv/bin/python benchmarks/world_model_v4_speed.py                       # cpu preset, contexts 8 32 96
    .venv/bin/python benchmarks/world_model_v4_speed.py --preset tiny --contexts 4 8 --batch-size 2
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.imagination import WorldModelV4Env
from dmo_ros.world_model_v4.model import WorldModelV4


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def frames_per_second(model: WorldModelV4, context: int, batch_size: int, steps: int, use_cache: bool,
                      device: torch.device) -> float:
    """Imagined frames/s of ``steps`` steps after a prefill of ``context - 1`` frames (one warm-up step first)."""
    size, actions = model.config.image_size, model.config.action_size
    env = WorldModelV4Env(model, device=device, use_cache=use_cache, context=context,
                          generator=torch.Generator(device=device).manual_seed(0))
    frames = torch.randint(0, 256, (batch_size, context - 1, 3, size, size), dtype=torch.uint8)
    env.reset(frames, torch.zeros(batch_size, context - 1, actions))
    env.step(torch.zeros(batch_size, actions))  # warm-up (and the cache/window now holds context - 1 frames)
    synchronize(device)
    began = time.perf_counter()
    for _ in range(steps):
        env.step(torch.zeros(batch_size, actions))
    synchronize(device)
    return batch_size * steps / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", choices=("tiny", "cpu", "gpu"), help="network sizes (default cpu)")
    parser.add_argument("--contexts", type=int, nargs="+", default=[8, 32, 96],
                        help="context lengths (default 8 32 96)")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes stepped together (default 16)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps with the cache (default 4)")
    parser.add_argument("--uncached-steps", type=int, default=2, help="timed steps without the cache (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    tokenizer = TokenizerConfig.preset(args.preset)
    dynamics = DynamicsConfig.preset(args.preset, context=max(args.contexts), l_init=min(args.contexts) - 1,
                                     image_size=tokenizer.image_size, latent_tokens=tokenizer.latent_tokens,
                                     latent_dim=tokenizer.latent_dim)
    model = WorldModelV4(tokenizer, dynamics).to(device).eval()
    print(f"{args.preset} preset: {model.num_parameters / 1e6:.2f} M dynamics parameters, {dynamics.tokens_per_frame} "
          f"tokens per frame, {dynamics.sampling_steps} sampling steps, batch {args.batch_size}; "
          f"{device_name(device)}")
    print(f"{'context':>8} {'cached frames/s':>16} {'uncached frames/s':>18} {'speed-up':>9}")
    for context in args.contexts:
        cached = frames_per_second(model, context, args.batch_size, args.steps, True, device)
        uncached = frames_per_second(model, context, args.batch_size, args.uncached_steps, False, device)
        print(f"{context:>8d} {cached:>16.1f} {uncached:>18.1f} {cached / uncached:>8.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
