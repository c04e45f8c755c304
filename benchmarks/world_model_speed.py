"""World-model speed: imagined frames/s per batch size, and training samples/s.

Imagination: ``WorldModelEnv.step`` on random 4-frame context, DIAMOND's 3 Euler steps (3 denoiser
calls per frame) under ``no_grad``, for each ``--batch-sizes`` value: frames/s and the latency of one
step (batch 1 is what the 5 Hz dream node and a policy rollout of one episode pay). Training: one
AdamW step (forward, backward, update) of ``Denoiser.forward`` on random windows at
``--train-batch-size``: samples/s. With ``--bf16`` both run under bfloat16 autocast (CUDA; the
training loop's default there). Warm-up iterations come first; CUDA is synchronised around
every timed interval.

    .venv/bin/python benchmarks/world_model_speed.py                      # CPU: batch 1 and 4 (~1 min)
    .venv/bin/python benchmarks/world_model_speed.py --device cuda --bf16  # batch 1, 32, 256
    .venv/bin/python benchmarks/world_model_speed.py --preset cpu --batch-sizes 1 8 --iterations 5
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch

from dmo_ros.dataset.loaders import Window
from dmo_ros.world_model.config import PRESETS, SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser
from dmo_ros.world_model.imagination import WorldModelEnv


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_windows(config: WorldModelConfig, batch: int, device: torch.device) -> Window:
    t, size = config.context + 1, config.image_size
    return Window(
        frames=torch.randint(0, 256, (batch, t, 3, size, size), dtype=torch.uint8, device=device),
        actions=torch.randn(batch, t, config.action_size, device=device) * torch.tensor(config.action_scale,
                                                                                         device=device),
        intent=torch.zeros(batch, t, dtype=torch.bool, device=device),
        milestone=torch.zeros(batch, t, device=device),
        episode=torch.zeros(batch, dtype=torch.int64, device=device),
        start=torch.zeros(batch, dtype=torch.int64, device=device),
        context=config.context,
    )


def time_imagination(denoiser: Denoiser, sampler: SamplerConfig, batch: int, iterations: int, warmup: int,
                     autocast: contextlib.AbstractContextManager) -> tuple[float, float]:
    """(frames/s, ms per step) of ``WorldModelEnv.step`` at ``batch``."""
    device = denoiser.device
    env = WorldModelEnv(denoiser, sampler, generator=torch.Generator(device).manual_seed(0))
    window = random_windows(denoiser.config, batch, device)
    env.reset_from_windows(window)
    actions = window.actions[:, -1]
    with autocast:
        for _ in range(warmup):
            env.step(actions)
        synchronize(device)
        begin = time.perf_counter()
        for _ in range(iterations):
            env.step(actions)
        synchronize(device)
    seconds = time.perf_counter() - begin
    return batch * iterations / seconds, 1000 * seconds / iterations


def time_training(denoiser: Denoiser, batch: int, iterations: int, warmup: int,
                  autocast: contextlib.AbstractContextManager) -> float:
    """Training samples/s: forward + backward + AdamW step on random windows."""
    device = denoiser.device
    denoiser.train()
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=1e-4, weight_decay=1e-2)
    window = random_windows(denoiser.config, batch, device)

    def step() -> None:
        with autocast:
            loss, _ = denoiser(window)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    begin = time.perf_counter()
    for _ in range(iterations):
        step()
    synchronize(device)
    denoiser.eval()
    return batch * iterations / (time.perf_counter() - begin)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="gpu", choices=sorted(PRESETS),
                        help="network size (default gpu: DIAMOND's ~4.4 M-parameter UNet)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ...")
    parser.add_argument("--image-size", type=int, default=64, help="frame side in pixels (default 64)")
    parser.add_argument("--action-size", type=int, default=2, help="action components (default 2, Push-T)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="imagination batch sizes (default: 1 32 256 on CUDA; 1 4 on CPU, where the gpu "
                             "preset costs ~16 GFLOP per imagined frame)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="timed steps per measurement (default: 20 on CUDA, 2 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 CUDA, 1 CPU)")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps per frame (default 3)")
    parser.add_argument("--order", type=int, default=1, choices=(1, 2), help="1: Euler (default), 2: Heun")
    parser.add_argument("--train-batch-size", type=int, default=None,
                        help="training batch (default: 32 on CUDA, 4 on CPU; 0 skips training)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else torch.device(args.device)
    on_gpu = device.type == "cuda"
    batch_sizes = args.batch_sizes or ([1, 32, 256] if on_gpu else [1, 4])
    iterations = args.iterations or (20 if on_gpu else 2)
    train_batch = args.train_batch_size if args.train_batch_size is not None else (32 if on_gpu else 4)
    warmup = args.warmup if args.warmup is not None else (5 if on_gpu else 1)
    if on_gpu:
        torch.backends.cudnn.benchmark = True

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    torch.manual_seed(0)
    config = WorldModelConfig.preset(args.preset, args.action_size, image_size=args.image_size)
    denoiser = Denoiser(config).to(device).eval()
    sampler = SamplerConfig(num_steps=args.steps, order=args.order)
    calls = args.steps if args.order == 1 else 2 * args.steps - 1
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    print(f"network: {args.preset} preset, {denoiser.num_parameters / 1e6:.2f} M parameters, "
          f"{args.image_size}x{args.image_size}, context {config.context}; {args.steps} "
          f"{'Euler' if args.order == 1 else 'Heun'} steps ({calls} denoiser calls per frame)"
          f"{', bf16 autocast' if args.bf16 else ''}")
    print(f"imagination ({iterations} timed steps after {warmup} warm-up):")
    for batch in batch_sizes:
        rate, ms = time_imagination(denoiser, sampler, batch, iterations, warmup, autocast())
        print(f"  batch {batch:>4}: {rate:10.1f} imagined frames/s  ({ms:8.2f} ms per step)")
    if train_batch > 0:
        rate = time_training(denoiser, train_batch, iterations, warmup, autocast())
        print(f"training, batch {train_batch}: {rate:10.1f} samples/s "
              f"(forward + backward + AdamW, {iterations} timed steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
