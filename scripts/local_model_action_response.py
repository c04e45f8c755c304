"""Does the local model's prior move the agent where the action says? The world-model gate's action-response
measurement applied to the local RSSM's imagination, decoded to frames.

The local-model gate finds the one-step reward gradient d r̂(prior(h, z, a)) / d a nearly unrelated to the
true one (``scripts/local_model_gradient_parts.py``: the reward head reading real next frames agrees far
better than the prior's own reward). This looks one step earlier: from real validation windows it filters
the context frames, holds each command of {0, ±x, ±y} for ``--horizon`` steps with ``RSSM.imagine`` (each
categorical at its mode), decodes every prior state with the model's decoder and locates the agent there
(:func:`dmo_ros.gates.world_model.action_response_gate`, the stand-in's colours; evaluation only). It
prints the agent's visibility (also in the decoded *posteriors* of the context frames: does the latent hold the
agent at all?), its displacement along the command per step against the simulator's, the
fraction of rollouts moving the right way, and the one-step error against copying the last frame, and
writes a PNG of the rollouts to look at.

    .venv/bin/python scripts/local_model_action_response.py runs/local_model --dataset datasets/play \\
        --out reports/local_action_response.png

``local_model`` may also be a DMO run: its local model as the run's fine-tuning left it.

Needs a local model with a decoder (``decoder_loss_scale`` > 0, every preset's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dmo_ros.dataset.loaders import Window, collate
from dmo_ros.gates.world_model import Rollout, WorldModelGateConfig, action_response_gate, gate_windows
from dmo_ros.local_model.model import LocalModel
from dmo_ros.local_model.rssm import features
from dmo_ros.policy.api import load_run_local_model
from dmo_ros.sims.pusht_frames import locate_agent


def local_model_rollout(model: LocalModel) -> Rollout:
    """The local model as a :data:`dmo_ros.gates.world_model.Rollout`: filter the window's context, imagine
    under the given actions (modes, no sampling) and decode each prior state to a frame in [-1, 1]."""
    if model.decoder is None:
        raise ValueError("this local model has no decoder (decoder_loss_scale 0): nothing to look at")
    model.eval()

    @torch.no_grad()
    def rollout(window: Window, actions: torch.Tensor) -> torch.Tensor:
        context = window.context_frames.shape[1]
        # actions[:, t] leads from frame t to t + 1: the context's own, the last one leading out, is unused here.
        posteriors, _ = model.observe(window.context_frames, window.actions[:, :context].float(), sample=False)
        priors = model.rssm.imagine(posteriors.at(-1), actions.float(), sample=False)
        return model.decoder(features(priors)).float().clamp(-1, 1)

    return rollout


@torch.no_grad()
def posterior_agent_visible(model: LocalModel, dataset, indices: list[int]) -> float:
    """Fraction of context frames showing the agent whose *posterior* state, decoded, shows it too: what the
    latent holds before any prediction (frame 0, filtered from the initial state alone, is left out)."""
    found = shown = 0
    for first in range(0, len(indices), 32):
        window = collate([dataset[i] for i in indices[first : first + 32]])
        context = window.context_frames.shape[1]
        posteriors, _ = model.observe(window.context_frames, window.actions[:, :context].float(), sample=False)
        decoded = ((model.decoder(features(posteriors)).float().clamp(-1, 1) + 1) * 127.5).round().byte()
        _, real = locate_agent(window.context_frames[:, 1:].numpy())
        _, seen = locate_agent(decoded[:, 1:].numpy())
        found, shown = found + int((seen & real).sum()), shown + int(real.sum())
    return found / shown if shown else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("local_model", type=Path,
                        help="local-model run folder, or a DMO / No Diffusion run (its fine-tuned local model)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder (its validation windows)")
    parser.add_argument("--context", type=int, default=4, help="frames filtered before imagining (default 4)")
    parser.add_argument("--windows", type=int, default=64, help="validation windows (default 64)")
    parser.add_argument("--horizon", type=int, default=WorldModelGateConfig.horizon,
                        help=f"steps each command is held (default {WorldModelGateConfig.horizon})")
    parser.add_argument("--out", type=Path, help="PNG of the held-command rollouts (default: none)")
    parser.add_argument("--json", type=Path, help="write the measurements here as JSON")
    args = parser.parse_args(argv)

    model = load_run_local_model(args.local_model, "cpu")
    dataset, indices = gate_windows(args.dataset, args.context, args.windows)
    config = WorldModelGateConfig(windows=args.windows, horizon=args.horizon)
    report = action_response_gate(local_model_rollout(model), dataset, indices, config, args.out)
    report.component = "local_model (action response, decoded)"
    report.metrics["posterior_agent_visible"] = posterior_agent_visible(model, dataset, indices)
    print(report.format())
    print(f"agent visible in the decoded posteriors of the context frames: "
          f"{report.metrics['posterior_agent_visible']:.3f}")
    metrics = report.metrics
    print(f"simulator px per step (held command): {[round(v, 2) for v in metrics['simulator_px_per_step']]}")
    print(f"imagined px along the command:        {[round(v, 2) for v in metrics['imagined_along_px_per_step']]}")
    for name, entry in metrics["commands"].items():
        print(f"  {name:>4}: visible {entry['visible']:.3f}, right direction {entry.get('right_direction', '-')}")
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
