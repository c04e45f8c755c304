"""What does a Go2 local model's latent know of where the cube and the goal are? A probe of what the actor reads.

On rung 1 the DMO actor reads the local RSSM's posterior features (``features(state)``), where rung 0's reads the
true state (:func:`dmo_ros.ladder.cube_state_env.observe`: the cube and the goal in the robot's frame). A policy
cannot aim better than its input says where the cube and the goal are. This filters ``--episodes`` stand-in
episodes of the scripted operator (half expert, half explorer, as the gate's probes; each action with Gaussian noise
of ``--action-noise`` x the limits so the states spread) through the local model's posterior, and fits a probe
from the features to the cube's and the goal's positions in the robot's frame (x forward, y left, metres) on the
first half of the episodes: an MLP of the actor's size (a ridge probe reads nothing here, not even from the
pixels: a position in the image is not linear in them). It prints the probe's mean absolute error on the second half
beside predicting the mean (in brackets), overall and where each is in view / out of view, and the same probe on
the current frame's pixels (what a policy without memory could know). Evaluation-side (it reads the simulator's
state); training never does::

    python scripts/push_cube_state_probe.py runs/go2aw/local_p1 runs/go2aw/local_p1_s4531 --out reports/probe.json

The Push-T counterpart is the gate's :func:`dmo_ros.gates.local_model.state_probe`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dmo_ros.dataset.images import resize
from dmo_ros.ladder import cube_state_env
from dmo_ros.local_model.model import LocalModel, load_local_model
from dmo_ros.local_model.rssm import features
from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim
from dmo_ros.teleop.scripted import make_operator, push_cube_observation
from dmo_ros.training.checkpoint import CheckpointError


def operator_episodes(episodes: int, steps: int, image_size: int, seed: int, action_noise: float
                      ) -> list[dict[str, np.ndarray]]:
    """``episodes`` stand-in episodes of ``steps`` operator steps: per episode ``frames`` (T, 3, H, W) uint8,
    ``actions`` (T, 3) (``actions[t]`` led from frame t to t + 1), ``targets`` (T, 4: cube x, y, goal x, y in the
    robot's frame, m: :func:`~dmo_ros.ladder.cube_state_env.observe`'s) and ``in_view`` (T, 2) bool (the cube, the
    goal disc: :func:`~dmo_ros.ladder.cube_state_env.goal_in_view`)."""
    rng = np.random.default_rng(seed)
    config = PushCubeConfig(seed=seed + 20_000)
    limits = np.array([config.max_vx, config.max_vy, config.max_yaw_rate])
    sim, operator = PushCubeSim(config), make_operator("go2")
    out = []
    try:
        for episode in range(episodes):
            if episode:
                sim.reset()
            policy = operator.expert if episode % 2 == 0 else operator.explorer
            policy.begin(push_cube_observation(sim.state()), rng)
            frames, actions, targets, in_view = [], [], [], []
            for _ in range(steps):
                state = sim.state()
                frames.append(resize(sim.render(), image_size, image_size, "crop"))
                targets.append(cube_state_env.observe(state)[0:4].astype(np.float64) * cube_state_env.HALF_M)
                in_view.append((state.cube_in_view, cube_state_env.goal_in_view(sim)))
                action = np.asarray(policy.act(push_cube_observation(state)), dtype=np.float64)
                action = np.clip(action + action_noise * limits * rng.standard_normal(3), -limits, limits)
                actions.append(action)
                sim.step(action)
            out.append({"frames": np.stack(frames).transpose(0, 3, 1, 2),
                        "actions": np.stack(actions).astype(np.float32), "targets": np.stack(targets),
                        "in_view": np.array(in_view)})
    finally:
        sim.close()
    return out


def mlp_probe(inputs: np.ndarray, targets: np.ndarray, in_view: np.ndarray, train: int, steps: int = 3000,
              seed: int = 0) -> dict[str, float]:
    """Fit an MLP (two hidden layers of 256, ELU: the actor's shape) from ``inputs`` (N, F) to ``targets`` (N, 4:
    cube x, y, goal x, y) on the first ``train`` rows (L1, AdamW, ``steps`` batches of 256) and score the rest:
    ``{cube,goal}_error[_in_view|_out_of_view]`` (mean |error| over the two coordinates, m) with
    ``..._baseline`` (the training mean's) beside each; ``in_view`` (N, 2) splits the cube's and the goal's.

    Raises ValueError when ``train`` leaves no rows on either side."""
    if not 0 < train < len(targets):
        raise ValueError(f"train must leave rows on both sides, got {train} of {len(targets)}")
    torch.manual_seed(seed)
    x, y = torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.float32)
    width = 256
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], width), torch.nn.ELU(), torch.nn.Linear(width, width),
                              torch.nn.ELU(), torch.nn.Linear(width, y.shape[1]))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    centre = y[:train].mean(0)  # the net learns the offset from the mean: its baseline at initialisation
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = torch.randint(0, train, (256,), generator=generator)
        loss = (net(x[rows]) + centre - y[rows]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        error = (net(x[train:]) + centre - y[train:]).abs().numpy()
    baseline = (y[train:] - centre).abs().numpy()
    result: dict[str, float] = {"train_rows": train, "scored_rows": len(targets) - train}
    for column, name in ((slice(0, 2), "cube"), (slice(2, 4), "goal")):
        visible = in_view[train:, 0 if name == "cube" else 1]
        for suffix, keep in (("", slice(None)), ("_in_view", visible), ("_out_of_view", ~visible)):
            if error[keep].size:
                result[f"{name}_error{suffix}"] = float(error[keep, column].mean())
                result[f"{name}_error_baseline{suffix}"] = float(baseline[keep, column].mean())
        result[f"{name}_in_view_fraction"] = float(visible.mean())
    return result


@torch.no_grad()
def posterior_features(model: LocalModel, episodes: list[dict[str, np.ndarray]]) -> np.ndarray:
    """(N, F) the actor's input along ``episodes``: the features of the local model's posterior, each episode
    filtered from its first frame."""
    model.eval()
    rows = []
    for episode in episodes:
        posteriors, _ = model.observe(torch.from_numpy(episode["frames"])[None],
                                      torch.from_numpy(episode["actions"])[None], sample=False)
        rows.append(features(posteriors)[0].numpy())
    return np.concatenate(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("local_models", type=Path, nargs="+", help="dmo-train-local-model runs on Go2 data")
    parser.add_argument("--episodes", type=int, default=100, help="operator episodes (half fit the probe)")
    parser.add_argument("--steps", type=int, default=60, help="steps per episode (12 s at 5 Hz)")
    parser.add_argument("--action-noise", type=float, default=0.2, help="Gaussian noise on the operator's actions, "
                        "x the limits (spreads the states)")
    parser.add_argument("--probe-steps", type=int, default=3000, help="the probe's training batches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")
    options = parser.parse_args(argv)
    if options.episodes < 2 or options.steps < 2:
        parser.error("--episodes and --steps must be >= 2")
    try:  # a folder that is not a local-model run: its message, not a traceback
        models = {path: load_local_model(path, "cpu") for path in options.local_models}
    except CheckpointError as error:
        parser.error(str(error))
    sizes = {model.config.image_size for model in models.values()}
    if len(sizes) != 1:
        parser.error(f"the local models see different image sizes {sorted(sizes)}; probe them one at a time")
    episodes = operator_episodes(options.episodes, options.steps, sizes.pop(), options.seed, options.action_noise)
    targets = np.concatenate([e["targets"] for e in episodes])
    in_view = np.concatenate([e["in_view"] for e in episodes])
    train = sum(len(e["targets"]) for e in episodes[: len(episodes) // 2])
    inputs = {str(path): posterior_features(model, episodes) for path, model in models.items()}
    # The current frame's pixels at half resolution, in [0, 1]: what a policy without memory could read.
    inputs["pixels of the current frame"] = np.concatenate(
        [e["frames"][:, :, ::2, ::2].reshape(len(e["frames"]), -1) for e in episodes]).astype(np.float32) / 255
    results = {name: mlp_probe(x, targets, in_view, train, options.probe_steps, options.seed)
               for name, x in inputs.items()}
    print(f"MLP probe, {options.episodes} operator episodes x {options.steps} steps (seed {options.seed}; cube in "
          f"view in {in_view[train:, 0].mean():.0%}, goal in {in_view[train:, 1].mean():.0%} of the scored steps); "
          "mean |error| in m on the held-out half, in brackets predicting the mean")
    print("| input | cube | cube in view | cube out of view | goal | goal in view | goal out of view |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        cells = [f"{r[f'{key}_error{suffix}']:.3f} ({r[f'{key}_error_baseline{suffix}']:.3f})"
                 if f"{key}_error{suffix}" in r else "-"
                 for key in ("cube", "goal") for suffix in ("", "_in_view", "_out_of_view")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
