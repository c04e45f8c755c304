"""``dmo-dream-strip``: a picture of the world model dreaming, for the README (like the paper's Fig. 2).

From a real start window of a dataset, the world model imagines ``--horizon`` steps under the recorded actions
(default; the real frames are shown above the imagined ones) or a policy (``--policy``: only the imagined row).
Writes into ``--out``:

- ``strip.png``: columns at steps 0, ``every``, 2 ``every``, ...; rows *real* (the recording), *imagined* and
  *spread* (the per-pixel variance over the seeds: where the model is unsure), each frame upscaled;
- ``strip.gif``: the whole rollout, real | imagined side by side (the context plays first);
- ``strip.json``: the start, the actions' source and the per-step spread.

    dmo-dream-strip runs/wm --dataset datasets/pusht --horizon 30 --every 5 --out docs/dream
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from dmo_ros.dream.rollouts import DreamConfig, Dreamer, DreamStep, PolicyActions, RecordedActions, StartCatalog
from dmo_ros.dream.views import heat
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_folder
from dmo_ros.training.rollout_pictures import write_rollout_gif
from dmo_ros.world_model.denoiser import load_world_model, to_model_range

LABEL_WIDTH, HEADER, GAP = 64, 14, 2


def strip_image(context_last: torch.Tensor, steps: list[DreamStep], every: int, scale: int,
                show_real: bool = True) -> Image.Image:
    """The strip of rollout 0: rows real / imagined / spread, columns step 0 (the last real context frame) and
    then every ``every``-th imagined step (frame k is the result of k actions)."""
    columns = [0, *range(every, len(steps) + 1, every)]
    rows: list[tuple[str, list[np.ndarray]]] = []

    def up(frame: torch.Tensor) -> np.ndarray:
        return frame.permute(1, 2, 0).numpy().repeat(scale, 0).repeat(scale, 1)

    first = up(context_last)
    if show_real and all(s.real is not None for s in steps):
        rows.append(("real", [first] + [up(steps[k - 1].real[0]) for k in columns[1:]]))
    rows.append(("imagined", [first] + [up(steps[k - 1].imagined[0]) for k in columns[1:]]))
    blank = np.zeros_like(first)
    # the heat scale: the largest per-pixel variance of the shown frames (yellow), so a weak spread still shows
    full = max(float(steps[k - 1].spread_map[0].max()) for k in columns[1:]) or 1.0
    rows.append((f"spread\n<= {full:.2g}", [blank] + [up(heat(steps[k - 1].spread_map[:1], full=full)[0])
                                                     for k in columns[1:]]))
    h, w = first.shape[:2]
    canvas = Image.new("RGB", (LABEL_WIDTH + len(columns) * (w + GAP), HEADER + len(rows) * (h + GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, k in enumerate(columns):
        draw.text((LABEL_WIDTH + c * (w + GAP) + 2, 1), "t=0" if k == 0 else f"+{k}", fill=(0, 0, 0))
    for r, (name, frames) in enumerate(rows):
        top = HEADER + r * (h + GAP)
        draw.multiline_text((2, top + h // 2 - 5), name, fill=(0, 0, 0))
        for c, frame in enumerate(frames):
            canvas.paste(Image.fromarray(frame), (LABEL_WIDTH + c * (w + GAP), top))
    return canvas


def dream_strip(run_dir: Path, dataset: Path, out: Path, horizon: int = 30, every: int = 5, scale: int = 3,
                episode: int = -1, offset: int = 0, seeds: int = 4, seed: int = 0, policy: Path | None = None,
                device: str = "cpu") -> dict[str, Any]:
    """Imagine one rollout and write ``strip.png``, ``strip.gif`` and ``strip.json`` into ``out``."""
    if every < 1 or every > horizon:
        raise ValueError(f"--every must be between 1 and the horizon ({horizon}), got {every}")
    world_model = load_world_model(run_dir, device)
    catalog = StartCatalog(dataset, world_model.config.context, horizon)
    index = catalog.find(episode, offset) if episode >= 0 else 0
    start = catalog.start(index, 1)
    if policy is not None:
        from dmo_ros.dream.rollouts import load_policy_value
        from dmo_ros.policy.api import load_policy

        source = PolicyActions(load_policy(policy, device), load_policy_value(policy, device))
    else:
        source = RecordedActions()
    dreamer = Dreamer(world_model, DreamConfig(horizon=horizon, seeds=seeds, seed=seed), device=device)
    dreamer.start(start, source)
    steps = dreamer.rollout()
    out.mkdir(parents=True, exist_ok=True)
    strip_image(start.frames[0, -1], steps, every, scale, show_real=policy is None).save(out / "strip.png")
    imagined = to_model_range(torch.stack([s.imagined[0] for s in steps])[None])
    real = (to_model_range(torch.stack([s.real[0] for s in steps])[None]) if policy is None
            else torch.full_like(imagined, -1.0))  # no real frames under the policy's actions: black
    write_rollout_gif(out / "strip.gif", to_model_range(start.frames[:1]), real, imagined, scale=scale)
    report = {"world_model": str(run_dir), "dataset": str(dataset), "start": start.labels[0],
              "actions": source.name, "policy": str(policy) if policy else None, "horizon": horizon, "every": every,
              "seeds": seeds, "spread": [float(s.spread[0]) for s in steps],
              "real_mse": [float(((s.imagined[0].double() - s.real[0].double()) / 255).pow(2).mean())
                           for s in steps] if policy is None else None}
    (out / "strip.json").write_text(json.dumps(report, indent=1))
    return report


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-dream-strip",
        description="Write a PNG strip (real row / imagined row / spread row at steps 0, N, 2N, ...) and a GIF of "
                    "one imagined rollout from a dataset's start window.")
    parser.add_argument("run_dir", type=Path, help="world-model run folder (config.json + safetensors weights)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder of the start window")
    parser.add_argument("--out", type=output_folder, default=None, help="output folder (default RUN_DIR/dream_strip)")
    parser.add_argument("--horizon", type=int, default=30, help="imagined steps (default 30 = 6 s)")
    parser.add_argument("--every", type=int, default=5, help="steps between the strip's columns (default 5)")
    parser.add_argument("--scale", type=int, default=3, help="upscaling of the frames (default 3)")
    parser.add_argument("--episode", type=int, default=-1, help="dataset episode (default: the first validation one)")
    parser.add_argument("--offset", type=int, default=0, help="samples into the episode where the window begins")
    parser.add_argument("--policy", type=Path, default=None,
                        help="policy run folder driving the rollout (default: replay the recorded actions)")
    parser.add_argument("--seeds", type=int, default=4, help="denoising seeds for the spread row (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = parser.parse_args(argv)
    out = args.out or args.run_dir / "dream_strip"
    try:
        report = dream_strip(args.run_dir, args.dataset, out, args.horizon, args.every, args.scale, args.episode,
                             args.offset, args.seeds, args.seed, args.policy, args.device)
    except (ValueError, FileNotFoundError, RuntimeError) as error:  # DatasetError, CheckpointError, PolicyError
        print(f"dmo-dream-strip: error: {error}", file=sys.stderr)
        return 2
    print(f"{report['start']}, {report['actions']} actions, {report['horizon']} steps: wrote {out / 'strip.png'}, "
          f"strip.gif, strip.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
