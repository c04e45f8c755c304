"""Push Cube ladder probe: would the paper's intent reward rank the policies as the task does?

The paper (Sec. III, reward models) trains the Push Cube reward on the operator's intent labels instead of goal
pictures: P(intent | frame), plus a bonus where a milestone is met. This probe trains a small frame classifier
P(intent | frame) on a dataset's training episodes (no world model: the reward's shape alone), prints its
validation ROC AUC, then scores the same stand-in episodes as ``push_cube_learned_return.py`` (scripted expert,
trained policies, random, zero action; an episode ends at success) and prints per controller the mean
P(intent) over the steps taken, its last value (the expert's: at success) and its maximum. A reward a policy
can exploit shows as a policy's frames scoring as high as the expert's while its progress stays near zero.

Evaluation-side (reads the simulator's progress); the classifier never does::

    python scripts/push_cube_intent_probe.py datasets/go2 runs/go2/r1gs_dmo_s0 --steps 1500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dmo_ros.dataset.loaders import ClipDataset
from dmo_ros.policy.api import load_policy
from dmo_ros.policy.episodes import PolicyController
from dmo_ros.policy.push_cube_eval import PushCubeEvalConfig, make_ceiling
from dmo_ros.sims.push_cube import PushCubeSim

sys.path.insert(0, str(Path(__file__).parent))
from push_cube_learned_return import run  # noqa: E402  (the same episodes)


def classifier() -> nn.Module:
    """A small CNN: (N, 3, 64, 64) float in [-1, 1] -> (N,) intent logits."""
    layers, width_in = [], 3
    for width in (32, 64, 128):
        layers += [nn.Conv2d(width_in, width, 4, stride=2, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
        width_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128 * 16, 128), nn.SiLU(),
                         nn.Linear(128, 1), nn.Flatten(0))


def split_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, H, W, 3) uint8 and intent (N,) of a split's samples."""
    source = ClipDataset(folder, 1, split)
    index = np.concatenate([np.arange(int(ep["start"]), int(ep["start"]) + int(ep["length"]))
                            for ep in source.episodes])
    return np.asarray(source.arrays["frames"][index]), np.asarray(source.arrays["intent"][index]).astype(bool)


def model_input(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = labels.sum()
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * (len(labels) - positives)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("policies", nargs="*", type=Path, help="policy run folders")
    parser.add_argument("--steps", type=int, default=1500, help="classifier training steps (batch 64)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--episode-steps", type=int, default=48)
    parser.add_argument("--seed", type=int, default=10_000, help="placements' seed (the evaluation's by default)")
    args = parser.parse_args()

    torch.manual_seed(0)
    frames, intent = split_arrays(args.dataset, "train")
    val_frames, val_intent = split_arrays(args.dataset, "val")
    net = classifier()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for step in range(args.steps):
        batch = rng.integers(len(frames), size=64)
        loss = nn.functional.binary_cross_entropy_with_logits(net(model_input(frames[batch])),
                                                              torch.from_numpy(intent[batch]).float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 250 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    net.eval()
    with torch.no_grad():
        val_scores = torch.cat([net(model_input(val_frames[k: k + 512])) for k in range(0, len(val_frames), 512)])
    print(f"validation ROC AUC of P(intent | frame): {roc_auc(val_scores.numpy(), val_intent):.3f} "
          f"({len(val_frames)} frames, {val_intent.mean():.0%} intent)")

    controllers = [(name, make_ceiling(name, args.seed)) for name in ("expert", "random", "zero")]
    controllers += [(str(run_dir), PolicyController(load_policy(run_dir))) for run_dir in args.policies]
    print(f"{'controller':<34} {'mean p':>7} {'last p':>7} {'max p':>7} {'progress':>9} success")
    for name, controller in controllers:
        means, lasts, maxima, progress_end, wins = [], [], [], [], 0
        with PushCubeSim(PushCubeEvalConfig(seed=args.seed).sim_config()) as sim:
            for episode in range(args.episodes):
                if episode:
                    sim.reset()
                episode_frames, progress, success = run(controller, sim, args.episode_steps, 64)
                with torch.no_grad():
                    p = torch.sigmoid(net(model_input(episode_frames))).numpy()
                means.append(p[1:].mean())
                lasts.append(p[-1])
                maxima.append(p.max())
                progress_end.append(progress[-1])
                wins += success
        print(f"{name[-34:]:<34} {np.mean(means):7.3f} {np.mean(lasts):7.3f} {np.mean(maxima):7.3f} "
              f"{np.mean(progress_end):9.3f} {wins}/{args.episodes}")


if __name__ == "__main__":
    main()
