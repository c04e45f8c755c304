"""World-model sampling speed, before and after, side by side in one run (issue 13, point 5).

Times one imagined frame (``DiffusionSampler.sample``: DIAMOND's 3 Euler steps on a 4-frame context) of
the ``cpu`` preset at ``--batch`` for each variant, in interleaved rounds (A B C A B C ...) so that a
loaded machine slows every variant alike — with one thread (``OMP_NUM_THREADS=1``) as this thread's CPU
time, which a shared machine's scheduler does not inflate; reports the median per variant, the speed-up over *before*,
and how far each variant's frames are from *before*'s (same weights, same context, same noise):

- ``before``: every denoiser call redoes the context (range conversion and checks, scaling,
  space-to-depth, the stem's context channels, the action embedding), the network's original
  operations (``inner_model.reference_ops``: AdaGN's scale and shift apart, SiLU out of place),
  ``torch.no_grad``, float32 — the sampler as it was;
- ``prepared``: the context's share computed once per frame (``Denoiser.prepare``; the stem's
  convolution split by input channels, exact up to float rounding), and with it the conditioning at every
  noise level the sampler will use (each AdaGN's scale and shift: one matrix product per frame instead of
  one per layer and step), the last Euler step returning D(x) directly, AdaGN's scale and shift, the SiLU
  after it and the residual sums in place (no grad), ``torch.inference_mode``;
- ``prepared + channels_last``: the same with the UNet in channels-last memory format (and the output's
  depth-to-space written back channels-first) — what ``WorldModelEnv`` runs on a CPU;
- ``prepared + bf16``: the same under bfloat16 autocast (oneDNN uses AMX where the CPU has it) — not
  unchanged outputs: its own tolerance is reported;
- ``prepared + channels_last + compile`` (``--compile``): the network's denoiser call
  (``InnerModel.forward_prepared``) through ``torch.compile`` with inductor freezing; the compile time is
  reported (minutes on 2 loaded cores).

Tolerances: "unchanged" is max |frame difference| <= 1e-4 on the [-1, 1] scale (1/78 of one uint8
level); bf16 is held to two uint8 levels (1.6e-2); the share of identical uint8 pixels and the largest
level difference are shown. Weights: ``--world-model RUN_DIR`` loads a trained model; by default the
preset's random initialisation with its zero-initialised output layers given small random weights
(else the UNet's output would be 0 and the comparison trivial).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampling_speed.py --batch 16 --rounds 5 [--sampler-steps 1]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch

from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser, load_world_model, to_uint8
from dmo_ros.world_model.inner_model import reference_ops
from dmo_ros.world_model.sampler import DiffusionSampler

EXACT_TOLERANCE = 1e-4
BF16_TOLERANCE = 2 / 127.5
"""Two uint8 levels: bf16 frames may round to a neighbouring level, never further."""


def build(args: argparse.Namespace) -> Denoiser:
    if args.world_model is not None:
        return load_world_model(args.world_model, "cpu").eval()
    torch.manual_seed(0)
    denoiser = Denoiser(WorldModelConfig.preset(args.preset, 2, image_size=args.image_size)).eval()
    with torch.no_grad():
        for parameter in denoiser.parameters():
            if parameter.ndim > 1 and not parameter.abs().sum():
                parameter.normal_(0.0, 0.02)
    return denoiser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="world-model size preset (default cpu)")
    parser.add_argument("--world-model", default=None, help="a trained world-model run folder instead")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="imagined episodes per step (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="frames per variant per round (default 2)")
    parser.add_argument("--sampler-steps", type=int, default=3,
                        help="Euler steps per frame (default 3, DIAMOND's; the cpu preset samples with 1)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--no-bf16", action="store_true", help="leave out the bf16 variant")
    args = parser.parse_args(argv)

    denoiser = build(args)
    config = denoiser.config
    generator = torch.Generator().manual_seed(1)
    context = torch.rand(args.batch, config.context, 3, config.image_size, config.image_size, generator=generator)
    context = context * 2 - 1
    actions = torch.randn(args.batch, config.context, config.action_size, generator=generator) * 0.1

    def variant(sampler: DiffusionSampler, mode: Callable[[], contextlib.AbstractContextManager]) -> Callable:
        def run() -> torch.Tensor:
            with mode():
                return sampler.sample(context, actions, torch.Generator().manual_seed(0)).float()
        return run

    steps = SamplerConfig(num_steps=args.sampler_steps)
    reference = DiffusionSampler(denoiser, steps, fast=False)
    prepared = DiffusionSampler(denoiser, steps)
    def before() -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(reference_ops())
        return stack

    variants: dict[str, tuple[Callable, float]] = {
        "before (per-call context, no_grad)": (variant(reference, before), EXACT_TOLERANCE),
        "prepared context, inference_mode": (variant(prepared, torch.inference_mode), EXACT_TOLERANCE),
    }
    channels_last = build(args).to(memory_format=torch.channels_last)
    variants["prepared + channels_last"] = (variant(DiffusionSampler(channels_last, steps),
                                                    torch.inference_mode), EXACT_TOLERANCE)
    if not args.no_bf16:
        def bf16() -> contextlib.AbstractContextManager:
            stack = contextlib.ExitStack()
            stack.enter_context(torch.inference_mode())
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
            return stack

        variants["prepared + bf16 autocast"] = (variant(prepared, bf16), BF16_TOLERANCE)
        variants["prepared + channels_last + bf16"] = (variant(DiffusionSampler(channels_last, steps), bf16),
                                                       BF16_TOLERANCE)
    compile_s = None
    if args.compile:
        import torch._inductor.config as inductor

        inductor.freezing = True
        compiled = build(args).to(memory_format=torch.channels_last)
        network = torch.compile(compiled.inner_model.forward_prepared, dynamic=False)

        def forward_prepared(noisy, c_noise, features, modulation=None):  # the conditioning inside the graph
            return network(noisy, c_noise, features)

        compiled.inner_model.forward_prepared = forward_prepared
        run = variant(DiffusionSampler(compiled, steps), torch.no_grad)
        begin = time.perf_counter()
        run()
        compile_s = time.perf_counter() - begin
        variants["prepared + channels_last + compile"] = (run, EXACT_TOLERANCE)

    outputs = {name: run() for name, (run, _) in variants.items()}  # also the warm-up
    times: dict[str, list[float]] = {name: [] for name in variants}
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    for _ in range(args.rounds):
        for name, (run, _) in variants.items():
            begin = clock()
            for _ in range(args.repeats):
                run()
            times[name].append((clock() - begin) / args.repeats)

    print(f"world-model sampling, {args.world_model or args.preset + ' preset (random weights)'}: "
          f"{denoiser.num_parameters / 1e6:.2f} M parameters, {config.image_size}x{config.image_size}, "
          f"context {config.context}, {args.sampler_steps} Euler step(s); batch {args.batch}; "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {torch.backends.cpu.get_cpu_capability()}; median of "
          f"{args.rounds} interleaved rounds x {args.repeats} frames, "
          f"{'CPU time of this thread' if clock is time.thread_time else 'wall-clock'}"
          + (f"; compile took {compile_s:.0f} s" if compile_s is not None else ""))
    before = statistics.median(times[next(iter(variants))])
    base = outputs[next(iter(variants))]
    print(f"| {'variant':38} | {'ms / frame':>10} | {'frames/s':>9} | {'speed-up':>8} | {'max |diff|':>10} | "
          f"{'same uint8 / max levels':>8} | {'tolerance':>9} | {'within':>6} |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 11}|{'-' * 10}|{'-' * 12}|{'-' * 25}|{'-' * 11}|{'-' * 8}|")
    for name, (_, tolerance) in variants.items():
        seconds = statistics.median(times[name])
        difference = (outputs[name] - base).abs().max().item()
        levels = (to_uint8(outputs[name]).int() - to_uint8(base).int()).abs()
        same = (levels == 0).float().mean().item()
        within = "yes" if difference <= tolerance else "NO"
        print(f"| {name:38} | {1000 * seconds:10.1f} | {args.batch / seconds:9.1f} | {before / seconds:7.2f}x | "
              f"{difference:10.2e} | {100 * same:7.2f}% / {levels.max().item()} | {tolerance:9.1e} | {within:>6} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
