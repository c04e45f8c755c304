"""Which part of a local model bends the reward gradient DMO hands the actor: the prior or the reward head?

The local-model gate (``dmo-gate local-model``) compares the one-step gradient d r̂(prior(h, z, a)) / d a
with a finite difference of the global reward through the stand-in (Push-T's, or the Go2's Push Cube one for a
local model of Go2 data, as the gate does). This splits that comparison
at the same simulator probes (evaluation only) into:

- ``gate``: the gate's own number, the local one-step gradient;
- ``posterior``: a finite difference of the local model's reward of the *true* next frame (the history
  filtered, then the frame the simulator rendered after a ± ε) — the reward head reading real frames;
- ``prior``: a finite difference of the one-step prior's reward at a ± ε — the dynamics' response;
- ``decoupled``: the gradient DMO's actor receives (``dmo_ros.dmo.decoupled``): the prior's Jacobian
  with the state's value swapped to the posterior of the simulator's next frame (the forward model
  here is the simulator: rung 1), averaged over the 2A frames after a ± ε.

If ``posterior`` agrees with the truth and ``prior`` does not, the prior's action response is what to
fix; if neither does, the reward head is.

    .venv/bin/python scripts/local_model_gradient_parts.py --reward-run runs/reward --goal goal.png \\
        runs/local_model runs/local_model_2500
    .venv/bin/python scripts/local_model_gradient_parts.py --reward-run runs/go2aw/intent_p1 runs/go2aw/local_p1

Prints, per model and part, the mean cosine with the simulator's finite difference over the larger-|FD|
half of ``--probes`` probes, its standard error, and the median norm ratio to the finite difference. With
``--ensemble`` (several local models trained on the same reward's labels), also the cosine of each part's gradient
averaged over the models: how much of a single draw's error is its own (averaging removes it) and how much all draws
share. With ``--policy RUN`` (or ``random``), a trained policy (random actions) drives the probes' episodes and
picks the probed action: the gradient where that policy goes rather than where the scripted operator does. With
``--steps K`` the local gradient of the K rewards after the action (the next K - 1 actions held) is compared with the
finite difference of the same K rewards through the stand-in (``--hold``: the probed action held for the K steps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from dmo_ros.dmo.decoupled import decoupled_step
from dmo_ros.gates.local_model import local_reward_gradient, simulator_probes
from dmo_ros.local_model.model import load_local_model
from dmo_ros.local_model.rssm import RSSMState
from dmo_ros.local_model.train import GO2_GATE_EPSILON, goal_reward_function
from dmo_ros.sims.pusht_tasks import TASKS
from dmo_ros.training.checkpoint import read_run_config

PARTS = {"gate": "local one-step gradient", "decoupled": "DMO's gradient: value swapped to the true next frame's",
         "posterior": "FD of the reward of the true next frame", "prior": "FD of the one-step prior's reward"}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0


def _load_local(path: Path):
    """A local-model run's model, or the local model inside a policy run (its deployed filter: fine-tuned during DMO
    with ``--finetune-steps``, averaged with ``--policy-ema``)."""
    from dmo_ros.policy.api import POLICY_KIND, load_policy

    if read_run_config(path).get("kind") == POLICY_KIND:
        return load_policy(path).local_model
    return load_local_model(path, "cpu")


def _controller(policy: str | None, seed: int):
    """What drives the probes' episodes: None (the scripted operator), random actions, or a policy run's policy."""
    if policy is None:
        return None
    if policy == "random":
        from dmo_ros.policy.evaluate import RandomController

        return RandomController(seed=seed)
    from dmo_ros.policy.api import load_policy
    from dmo_ros.policy.episodes import PolicyController

    return PolicyController(load_policy(policy))


def _decoupled_gradient(model, probe, forward_next) -> np.ndarray:
    """(A,) d r̂ / d a as DMO's actor gets it at ``probe``, averaged over the forward states (N, ...)."""
    with torch.no_grad():
        history, _ = model.observe(probe.frames[None], probe.actions[None], sample=False)
    count = forward_next.deter.shape[0]
    last = history.at(-1)
    start = RSSMState(*(part.expand(count, *part.shape[1:]) for part in (last.deter, last.stoch, last.params)))
    action = probe.actions[-1][None].expand(count, -1).clone().requires_grad_(True)
    state = decoupled_step(model.rssm.prior_step(start, action, sample=False), forward_next)
    (gradient,) = torch.autograd.grad(model.reward(state).sum(), action)
    return gradient.mean(0).double().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("local_models", nargs="+", type=Path,
                        help="local-model run folders, or policy runs (the local model they deploy)")
    parser.add_argument("--reward-run", type=Path, required=True, help="the global reward model's run folder")
    parser.add_argument("--goal", type=Path, default=None, help="goal picture (none for an intent reward)")
    parser.add_argument("--probes", type=int, default=128, help="simulator probes (default 128)")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="finite-difference step in the action's units (default: 0.05 on Push-T, 0.1 on the Go2)")
    parser.add_argument("--seed", type=int, default=7, help="probe seed (default 7, unlike the gate's 0)")
    parser.add_argument("--task", default="push_t", choices=TASKS,
                        help="the Push-T stand-in task whose states the probes visit (default push_t, as the gate)")
    parser.add_argument("--policy", default=None,
                        help="a trained policy's run folder, or 'random' (the evaluation's random-action floor): its "
                             "episodes pick the probes' states and actions instead of the scripted operator's (where "
                             "that policy goes)")
    parser.add_argument("--steps", type=int, default=1,
                        help="K > 1: the gradient of the sum of the K rewards after the probed action, the driving "
                             "policy's (or operator's) next K - 1 actions held (what DMO's H-step chain adds); only "
                             "the local gradient (gate) is split out then (default 1)")
    parser.add_argument("--hold", action="store_true",
                        help="with --steps K: hold the probed action itself for the K steps (what dmo-train-policy's "
                             "--gradient-matching-steps fits) instead of the driving policy's next actions")
    parser.add_argument("--ensemble", action="store_true",
                        help="also the cosine of the gradient averaged over the models (same reward's labels)")
    args = parser.parse_args(argv)

    from dmo_ros.policy.base import PolicyError
    from dmo_ros.training.checkpoint import CheckpointError

    try:  # every input read before the probes run: a bad path or run is one line, not a traceback
        models = [_load_local(path).eval() for path in args.local_models]
        size, length = models[0].config.image_size, 8
        robot = str(read_run_config(args.local_models[0]).get("robot", "pusht"))
        reward = goal_reward_function(args.reward_run, args.goal, size, torch.device("cpu"))
        controller = _controller(args.policy, args.seed)
        if args.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {args.steps}")
    except (CheckpointError, PolicyError, OSError, ValueError) as error:
        print(f"local_model_gradient_parts: error: {error}", file=sys.stderr)
        return 2
    epsilon = args.epsilon if args.epsilon is not None else GO2_GATE_EPSILON if robot == "go2" else 0.05
    next_frames = []  # the four frames after a ± ε e_i of each probe, as the probes' reward call sees them

    def capturing(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        next_frames.append(frames.clone())
        return reward(frames, start)

    probes = simulator_probes(capturing, args.probes, length, size, epsilon, args.seed, task=args.task, robot=robot,
                              controller=controller, steps=args.steps, hold=args.hold)
    action_size = probes[0].actions.shape[-1]
    shifts = torch.cat([torch.eye(action_size), -torch.eye(action_size)], 1).reshape(2 * action_size, action_size)
    truth = np.stack([probe.gradient for probe in probes])
    norms = np.linalg.norm(truth, axis=1)
    top = norms >= np.median(norms)

    held = "the probed action held" if args.hold else "later actions held"
    parts = PARTS if args.steps == 1 else {"gate": f"local {args.steps}-step gradient, {held}"}

    def report(name: str, gradients: dict[str, list[np.ndarray]]) -> None:
        for part, meaning in parts.items():
            cosines = np.array([_cosine(t, g) for t, g in zip(truth, gradients[part], strict=True)])[top]
            ratio = np.median([np.linalg.norm(g) / max(n, 1e-9)
                               for g, n in zip(gradients[part], norms, strict=True)])
            print(f"{name}  {part:9s} cosine {cosines.mean():+.3f} ± {cosines.std(ddof=1) / np.sqrt(len(cosines)):.3f}"
                  f"  norm ratio {ratio:.2f}  ({meaning}; {len(cosines)} of {len(probes)} probes)", flush=True)

    every = []
    for path, model in zip(args.local_models, models, strict=True):
        found = {part: [] for part in PARTS}
        for probe, after in zip(probes, next_frames, strict=True):
            found["gate"].append(local_reward_gradient(model, probe))
            if args.steps > 1:
                continue
            count = 2 * action_size
            frames = torch.cat([probe.frames[None].expand(count, -1, -1, -1, -1), after[:, None]], 1)
            actions = torch.cat([probe.actions[None].expand(count, -1, -1), torch.zeros(count, 1, action_size)], 1)
            actions[:, -2] = probe.actions[-1] + epsilon * shifts  # + e_0, - e_0, + e_1, - e_1, ...
            with torch.no_grad():
                posteriors, priors = model.observe(frames, actions, sample=False)
                for part, states in (("posterior", posteriors), ("prior", priors)):
                    values = model.reward(states.at(-1)).double().numpy().reshape(action_size, 2)
                    found[part].append((values[:, 0] - values[:, 1]) / (2 * epsilon))
            found["decoupled"].append(_decoupled_gradient(model, probe, posteriors.at(-1)))
        report(str(path), found)
        every.append(found)
    if args.ensemble and len(every) > 1:
        report(f"mean of {len(every)} models", {part: list(np.mean([found[part] for found in every], 0))
                                                 for part in parts})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
