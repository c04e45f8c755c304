"""Local-model gate: does the RSSM's one-step prediction, and the reward gradient DMO takes from it,
depend on the action the way the true system does?

Two measurements (DESIGN.md §8, issue "gates"):

- **action sensitivity** on validation sequences: the one-step prior ``p(z_{t+1} | h, z_t, a_t)`` made
  from the posterior of frame ``t`` with the *true* actions, with actions *shuffled* across the batch
  and time, and with *zero* actions, each scored against the posterior of frame ``t + 1``
  (``next_latent_kl`` in nats, ``next_latent_error`` = fraction of categoricals whose mode differs, or for a
  Gaussian latent the means' difference in standard deviations).
  A model that uses the action must get clearly worse with shuffled actions. Also the reward head's
  one-step error against the best constant predictor (the labels' median).
- **gradient cosine** on held-out states of the stand-in simulator (evaluation only): the gradient
  DMO hands the actor, ``d r̂(prior(h_t, z_t, a_t)) / d a_t`` from the local model, against a central
  finite difference of the *global* reward of the true next frame, ``(r(sim(s, a + ε e_i)) -
  r(sim(s, a - ε e_i))) / 2ε``. Mean cosine over the probes whose finite difference is the larger
  half (where the reward depends on the action at all), with its standard error.

- **state probe** (reported, not a check): how precisely a linear probe reads the agent's and the T's
  positions from the posterior features the actor sees, on stand-in episodes of random play
  (:func:`state_probe`): a policy cannot aim better than its latent knows where the agent is.
- **agent-only range** (reported, not a check; pushing tasks): the T held at reset poses, the agent placed over
  its whole reachable range (:func:`agent_only_ranges`); the local reward head's range over those frames beside
  the global reward's. A pushing reward should pay for the T, not for where the agent waits; a head that invents
  an agent term hands DMO's actor a pull toward its favourite spot (docs/ladder.md, "The local reward head puts
  the agent-only term back"). On the same frames, the **gradient drift**: the reward gradient the head hands the
  actor through ``drift_steps`` held prior steps, as the length of its mean unit arrow over the agent's places
  (1: one direction wherever the agent is) and that direction's cosine with the T's way to its goal (near 1 as
  well: the model moves the T with the action without contact; docs/ladder.md, "The local model moves the T
  without touching it").

Gate (defaults): shuffled KL >= 1.1 x true KL; gradient cosine >= 0.3; reward-head error below the
constant predictor's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dmo_ros.dataset.images import resize
from dmo_ros.gates.config_bounds import check_fields
from dmo_ros.gates.report import GateCheck, GateReport
from dmo_ros.local_model.model import LocalModel, SequenceBatch
from dmo_ros.local_model.rssm import RSSMState, latent_kl, latent_mode_error

if TYPE_CHECKING:  # the gates' reading of a policy's paths imports the same protocol at run time
    from dmo_ros.policy.episodes import Controller

RewardOfFrames = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``reward(frames (N, 3, H, W) uint8, start (3, H, W) uint8) -> (N,)``: the global reward of frames
in an episode that began at ``start`` (:class:`dmo_ros.reward.GoalReward`'s call)."""


@dataclass
class LocalModelGateConfig:
    """How the local-model gate measures and what it requires."""

    sequences: int = 64
    """Validation sequences for the action-sensitivity measurement."""
    probes: int = 192
    """Simulator states at which the reward gradient is compared with finite differences. One probe's cosine
    spreads by about ±0.6, so 48 probes (the earlier default) moved the gate's mean by ±0.15 between probe
    seeds on one model; 192 bring its standard error to about 0.06 (~1 min on one CPU core)."""
    epsilon: float = 0.05
    """Finite-difference step in the action's units (Push-T: m/s; 0.05 m/s moves the agent ~1 px at 64 x 64)."""
    min_shuffle_ratio: float = 1.1
    """Gate: next-latent KL with shuffled actions / with the true actions must be at least this."""
    min_gradient_cosine: float = 0.3
    """Gate: mean cosine of the local reward gradient with the simulator's finite difference."""
    seed: int = 0
    """Seed of the shuffles and of the simulator probes."""
    state_probe_episodes: int = 80
    """Stand-in episodes (40 steps each, ~25 s on one core) of the state probe (:func:`state_probe`: how precisely
    the latent holds the agent's and the T's positions; reported, not a check); 0: skip it."""
    agent_only_episodes: int = 4
    """Reset poses of the T for the agent-only range (:func:`agent_only_ranges`; ~15 s each on one core at the
    cpu preset; reported, not a check; pushing tasks of the Push-T stand-in only); 0: skip it."""
    agent_only_step: float = 32.0
    """Grid spacing of the agent's places for the agent-only range, arena units (64 u ~ 8 px at 64 x 64)."""
    drift_steps: int = 16
    """Held prior steps of the reward gradient whose drift is reported on the agent-only range's frames (DMO's
    cpu-preset horizon); 0: not measured."""
    task: str = "push_t"
    """The Push-T stand-in task whose states the gradient probes and the state probe visit: its resets, its
    scripted operator (a reach task's drives the agent to the target) and, for the reward, a goal picture of that
    task. A policy for a reach task needs the gradient where the agent goes there, not beside a T being pushed.
    ``push_t``: the probes follow the pushing operator from push_t's resets, the state probe runs on push_region's
    (the T's pose spread over the table, as before this option). ``push_cube``: the Go2's Push Cube stand-in and
    operator (no state probe)."""

    def __post_init__(self) -> None:
        from dmo_ros.sims.pusht_tasks import TASKS

        if self.task not in (*TASKS, "push_cube"):
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)} (or push_cube, the "
                             "Go2's, which dmo-gate picks from a Go2 dataset)")
        check_fields(self, counts=("sequences", "probes"),
                     optional_counts=("state_probe_episodes", "agent_only_episodes", "drift_steps"),
                     positive=("epsilon", "min_shuffle_ratio", "agent_only_step"),
                     correlations=("min_gradient_cosine",))


@dataclass
class GradientProbe:
    """One held-out simulator state: the recent history the RSSM filters, and the true reward gradient."""

    frames: torch.Tensor
    """(T, 3, H, W) uint8: the last T camera frames, the last one the current state's."""
    actions: torch.Tensor
    """(T, A) float32: ``actions[t]`` led from frame t to t + 1; the last is the action probed."""
    gradient: np.ndarray
    """(A,) d r / d a of the global reward of the true next frame, by central differences."""
    state: Any = None
    """The stand-in's state at the probe (``sim.state()``; evaluation only), for diagnostics that hold a state-based
    model beside the local one; None where not recorded."""
    continuation: torch.Tensor | None = None
    """(K - 1, A) float32: with ``steps`` K > 1, the operator's next actions after the probed one, held open-loop
    in the finite differences (``gradient`` is then d (r_1 + ... + r_K) / d a_0); None for one step."""

    @property
    def later_actions(self) -> torch.Tensor:
        """(K - 1, A) float32: ``continuation``, or (0, A) for a one-step probe — the actions held after a_0."""
        return self.continuation if self.continuation is not None else self.actions[:0]


def _one_step(model: LocalModel, posteriors: RSSMState, actions: torch.Tensor) -> RSSMState:
    """Priors of frames 1..T-1 from the posteriors of frames 0..T-2 under actions (B, T-1, A), flattened over time."""
    return model.rssm.prior_step(posteriors.at(slice(0, -1)).flatten_time(), actions.flatten(0, 1), sample=False)


@torch.no_grad()
def action_sensitivity(model: LocalModel, batch: SequenceBatch, seed: int = 0) -> dict[str, dict[str, float]]:
    """next_latent_kl / next_latent_error / reward_error per action variant ("true", "shuffled", "zero")."""
    model.eval()
    posteriors, _ = model.observe(batch.frames, batch.actions, sample=False)
    after = posteriors.at(slice(1, None))
    target_params = after.params.flatten(0, 1)
    labels = batch.rewards[:, 1:].float().flatten()
    actions = batch.actions[:, :-1].float()
    generator = torch.Generator().manual_seed(seed)
    shuffled = actions.flatten(0, 1)[torch.randperm(actions.shape[0] * actions.shape[1], generator=generator)]
    variants = {"true": actions, "shuffled": shuffled.reshape(actions.shape), "zero": torch.zeros_like(actions)}
    out = {}
    for name, variant in variants.items():
        prior = _one_step(model, posteriors, variant)
        out[name] = {
            "next_latent_kl": float(latent_kl(target_params, prior.params, model.config).mean()),
            "next_latent_error": float(latent_mode_error(prior.params, target_params, model.config).mean()),
            "reward_error": float((model.reward(prior).float() - labels).abs().mean()),
        }
    out["constant"] = {"reward_error": float((labels - labels.median()).abs().mean())}
    return out


def simulator_probes(reward: RewardOfFrames, count: int, history: int, image_size: int, epsilon: float,
                     seed: int = 0, warmup: tuple[int, int] = (6, 60), task: str = "push_t",
                     robot: str = "pusht", steps: int = 1, controller: Controller | None = None,
                     hold: bool = False) -> list[GradientProbe]:
    """``count`` states of a stand-in reached by its scripted operator, each with the finite-difference gradient of
    ``reward`` (start: the episode's first frame) with respect to the operator's next action.

    ``steps`` K > 1 (a diagnostic; the gate takes 1): the gradient of the sum of the rewards of the K frames after the
    action, the operator's next K - 1 actions (``GradientProbe.continuation``) held as they were; with ``hold``, the
    probed action itself repeated K - 1 times instead (what DMO's ``gradient_matching_steps`` fits).

    Every probe comes from a fresh episode after a random number of operator steps in ``warmup``, half of them
    following the expert, half the explorer. ``controller`` (a diagnostic: an evaluation's
    :class:`~dmo_ros.policy.episodes.Controller`, e.g. a trained policy's ``PolicyController``) drives the episodes
    and picks the probed action instead: the gradient where that policy goes. ``robot``: ``pusht`` (the Push-T
    stand-in playing ``task``: its resets, its operator) or ``go2`` (the Push Cube stand-in; actions in m/s and
    rad/s, ``task`` is not read).
    """
    from dmo_ros.teleop.scripted import make_operator, push_cube_observation, pusht_observation

    rng = np.random.default_rng(seed)
    if robot == "go2":
        from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim

        sim: Any = PushCubeSim(PushCubeConfig(seed=seed + 10_000))
        operator, observe, action_to_command = make_operator("go2"), push_cube_observation, 1.0
    else:
        from dmo_ros.sims.pusht import PushTConfig, PushTSim

        sim = PushTSim(PushTConfig(seed=seed + 10_000, task=task))
        operator, observe = make_operator("pusht", task=task), pusht_observation
        action_to_command = sim.config.control_period_s  # the operator's velocities -> the stand-in's step

    def camera() -> np.ndarray:
        return resize(sim.render(), image_size, image_size, "crop")

    def frames_after(action: np.ndarray) -> np.ndarray:
        """(K, H, W, 3): the frames after ``action`` and the continuation from the probe's state."""
        sim.restore(snapshot)
        frames = []
        for step_action in (action, *continuation):
            sim.step(step_action * action_to_command)
            frames.append(camera())
        return np.stack(frames)

    def next_action(policy: Any) -> np.ndarray:
        return controller.act(sim) if controller is not None else policy.act(observe(sim.state()))

    probes = []
    try:
        for index in range(count):
            if index:
                sim.reset()
            # Half the probes follow the expert, half the explorer; only the one used plans its episode. The draw
            # is made with a controller too, so its warm-up lengths are the operator's.
            policy = operator.expert if rng.random() < 0.5 else operator.explorer
            if controller is None:
                policy.begin(observe(sim.state()), rng)
            else:
                controller.reset(sim)
            warmup_steps = int(rng.integers(warmup[0], warmup[1] + 1))
            # Only the start (the reward's reference) and the last `history` frames are used: rendering
            # the rest would cost more than the simulation.
            frames, actions = [camera()], []
            for step in range(warmup_steps):
                action = np.asarray(next_action(policy), dtype=np.float64)
                sim.step(action * action_to_command)
                actions.append(action)
                if step >= warmup_steps - history:
                    frames.append(camera())
            start = torch.from_numpy(frames[0]).permute(2, 0, 1)
            action = np.asarray(next_action(policy), dtype=np.float64)
            snapshot = sim.snapshot()
            state = sim.state()
            continuation: list[np.ndarray] = []
            if steps > 1 and hold:
                continuation = [action] * (steps - 1)
            elif steps > 1:  # the operator's (or controller's) own next actions, from the unperturbed step on
                sim.step(action * action_to_command)
                for _ in range(steps - 1):
                    continuation.append(np.asarray(next_action(policy), dtype=np.float64))
                    sim.step(continuation[-1] * action_to_command)
            shifted = [action + sign * epsilon * np.eye(len(action))[i] for i in range(len(action)) for sign in (1, -1)]
            after = torch.from_numpy(np.concatenate([frames_after(a) for a in shifted])).permute(0, 3, 1, 2)
            rewards = reward(after, start).double().numpy().reshape(len(action), 2, steps).sum(-1)
            gradient = (rewards[:, 0] - rewards[:, 1]) / (2 * epsilon)
            sim.restore(snapshot)
            frames_t = torch.from_numpy(np.stack(frames[-history:])).permute(0, 3, 1, 2)
            actions_t = torch.from_numpy(np.stack([*actions, action])[-history:]).float()
            probes.append(GradientProbe(frames_t, actions_t, gradient, state,
                                        torch.from_numpy(np.stack(continuation)).float() if continuation else None))
    finally:
        sim.close()
    return probes


@torch.no_grad()
def state_probe(model: LocalModel, episodes: int = 80, steps: int = 40, seed: int = 0, ridge: float = 100.0,
                task: str = "push_region") -> dict[str, float]:
    """How precisely the latent holds where things are: a linear (ridge) probe of the agent's and the T's positions
    (arena units) from the posterior features the actor reads, filtered along stand-in episodes of random actions
    (held for a few steps, as play), fitted on the first half of the episodes and scored on the second half.

    Evaluation only (it reads the simulator's state). Returns the mean absolute errors in arena units (512 per
    side; the agent is 30 wide) of the probe and of predicting the training mean (``*_baseline``). A policy on
    this latent cannot aim more precisely than it knows where the agent is: the cpu-preset local models of
    docs/gates.md read the T to 15-22 u and the agent only to 72-87 u (the mean: 127 u)."""
    from dmo_ros.local_model.rssm import features
    from dmo_ros.sims.pusht import PushTConfig, PushTSim

    if episodes < 2 or steps < 1:
        raise ValueError(f"state_probe needs >= 2 episodes of >= 1 step, got {episodes} x {steps}")
    rng = np.random.default_rng(seed)
    size = model.config.image_size
    limit = np.asarray(model.config.action_scale, dtype=np.float64)
    sim = PushTSim(PushTConfig(seed=seed + 30_000, task=task))
    inputs, targets = [], []
    model.eval()
    try:
        for episode in range(episodes):
            if episode:
                sim.reset()
            state, previous = model.rssm.initial(1, "cpu"), torch.zeros(1, len(limit))
            action = rng.uniform(-1, 1, len(limit)) * limit
            for _ in range(steps):
                if rng.random() < 0.3:  # a new command now and then: play, not noise
                    action = rng.uniform(-1, 1, len(limit)) * limit
                frame = torch.from_numpy(resize(sim.render(), size, size, "crop")).permute(2, 0, 1)[None]
                prior = model.rssm.prior_step(state, previous, sample=False)
                state = model.rssm.posterior(prior, model.encode(frame), sample=False)
                truth = sim.state()
                inputs.append(features(state)[0].double().numpy())
                targets.append(np.r_[truth.agent, truth.block[:2]])
                sim.step(action * sim.config.control_period_s)
                previous = torch.as_tensor(action, dtype=torch.float32)[None]
    finally:
        sim.close()
    return linear_probe_errors(np.array(inputs), np.array(targets), (episodes // 2) * steps, ridge)


def linear_probe_errors(inputs: np.ndarray, targets: np.ndarray, train: int, ridge: float = 100.0,
                        ) -> dict[str, float]:
    """Ridge regression of ``targets`` (N, 4: agent x, y, T x, y) from ``inputs`` (N, F), each input standardised on
    the first ``train`` rows, fitted there and scored on the rest: mean absolute errors of the agent's and the
    T's coordinates, and of predicting the training mean (``*_baseline``)."""
    if not 0 < train < len(targets):
        raise ValueError(f"train must leave rows on both sides, got {train} of {len(targets)}")
    mean, std = inputs[:train].mean(0), inputs[:train].std(0) + 1e-6
    x = (inputs - mean) / std
    centre = targets[:train].mean(0)  # fitted on centred targets: the ridge shrinks toward the mean, not toward 0
    weights = np.linalg.solve(x[:train].T @ x[:train] + ridge * np.eye(x.shape[1]),
                              x[:train].T @ (targets[:train] - centre))
    error = np.abs(centre + x[train:] @ weights - targets[train:])
    baseline = np.abs(targets[train:] - centre)
    return {"agent_error": float(error[:, :2].mean()), "agent_error_baseline": float(baseline[:, :2].mean()),
            "block_error": float(error[:, 2:].mean()), "block_error_baseline": float(baseline[:, 2:].mean()),
            "samples": len(targets)}


def local_reward_gradient(model: LocalModel, probe: GradientProbe, path: str = "both") -> np.ndarray:
    """(A,) d (r̂_1 + ... + r̂_K) / d a_t of the local model at a probe: filter the history, then K one-step priors
    (the probe's ``continuation`` held after a_t; K = 1 without one) and the reward head on each.

    ``path`` keeps one way from a_t into the first prior (diagnostics; the gate uses ``both``): ``deter`` (the GRU's
    h', into which the action goes directly; z' held) or ``stoch`` (the categorical z' by its straight-through
    gradient; h' held). The two add up to ``both``. Raises ValueError for another ``path``."""
    if path not in ("both", "deter", "stoch"):
        raise ValueError(f"path must be both, deter or stoch, got {path!r}")
    model.eval()
    with torch.no_grad():
        posteriors, _ = model.observe(probe.frames[None], probe.actions[None], sample=False)
    action = probe.actions[-1][None].clone().requires_grad_(True)
    state = model.rssm.prior_step(posteriors.at(-1), action, sample=False)
    if path == "deter":
        state = RSSMState(state.deter, state.stoch.detach(), state.params.detach())
    elif path == "stoch":
        state = RSSMState(state.deter.detach(), state.stoch, state.params)
    total = model.reward_through_priors(state, [later[None] for later in probe.later_actions])
    (gradient,) = torch.autograd.grad(total.sum(), action)
    return gradient[0].double().numpy()


def gradient_agreement(model: LocalModel, probes: list[GradientProbe]) -> dict[str, float]:
    """Cosines of the local gradient with the finite differences: over the larger-|FD| half, and over all."""
    return cosine_agreement([local_reward_gradient(model, probe) for probe in probes], probes)


def cosine_agreement(gradients: list[np.ndarray], probes: list[GradientProbe]) -> dict[str, float]:
    """Cosines of any model's (A,) reward gradients, one per probe, with the probes' finite differences: their mean
    over the larger-|FD| half (``gradient_cosine``, ± ``gradient_cosine_standard_error``), over all, the fraction
    positive, and the finite differences' median norm (reward units per action unit)."""
    cosines, norms = [], []
    for local, probe in zip(gradients, probes, strict=True):
        denominator = np.linalg.norm(local) * np.linalg.norm(probe.gradient)
        cosines.append(float(local @ probe.gradient / denominator) if denominator > 0 else 0.0)
        norms.append(float(np.linalg.norm(probe.gradient)))
    cosines_a, norms_a = np.array(cosines), np.array(norms)
    top = norms_a >= np.median(norms_a)
    spread = float(cosines_a[top].std(ddof=1) / np.sqrt(top.sum())) if top.sum() > 1 else float("nan")
    return {"gradient_cosine": float(cosines_a[top].mean()), "gradient_cosine_standard_error": spread,
            "gradient_cosine_all": float(cosines_a.mean()),
            "positive_fraction": float((cosines_a[top] > 0).mean()), "probes": len(probes),
            "finite_difference_norm_median": float(np.median(norms_a))}


def agent_only_ranges(model: LocalModel, reward: RewardOfFrames, episodes: int = 4, step: float = 32.0,
                      task: str = "push_t", seed: int = 20_000, drift_steps: int = 16) -> dict[str, object]:
    """How much the local reward head pays for the agent's place alone, beside the global reward.

    For each of ``episodes`` resets of the Push-T stand-in's pushing ``task`` (seed ``seed``: the reward gate's),
    the T stays at its reset pose and the agent is placed on a ``step``-unit grid over its reachable range, the
    walls included (:func:`~dmo_ros.gates.reward.agent_grid`); each frame is scored by ``reward`` and by the local
    model's reward head on its held posterior (:func:`~dmo_ros.local_model.frame_reward.local_reward_of_frames`).
    Returns ``{"local": [range per episode], "global": [...], "correlation": [...], "local_mean", "global_mean",
    "spots"}`` (ranges: max - min, reward units); with ``drift_steps`` > 0 also ``"drift"`` and ``"drift_way_cosine"``
    (per episode: :func:`~dmo_ros.local_model.frame_reward.gradient_drift` of the head's gradient through
    ``drift_steps`` held prior steps over the agent's places, and the cosine of its mean direction with the T's way
    from its reset pose to the goal) and their means. Evaluation only: the simulator places the bodies.

    Raises:
        ValueError: a reach task (the agent's place is the whole reward there; the reach gate maps it).
    """
    from dmo_ros.gates.reward import agent_grid, cosine_with_t_way
    from dmo_ros.local_model.frame_reward import gradient_drift, local_reward_gradients, local_reward_of_frames
    from dmo_ros.sims.pusht import PushTConfig, PushTSim
    from dmo_ros.sims.pusht_tasks import REACH_TASKS

    if task in REACH_TASKS:
        raise ValueError(f"task {task!r} pays for the agent's place; its reward shape is the reach gate's map")
    head = local_reward_of_frames(model)
    size = model.config.image_size
    local, global_, correlation, drift, way_cosine, spots = [], [], [], [], [], 0
    sim = PushTSim(PushTConfig(task=task, seed=seed))
    try:
        for episode in range(episodes):
            if episode:
                sim.reset()
            _, frames, _ = agent_grid(sim, step, size)
            with torch.no_grad():
                values = reward(frames, frames[0]).float().cpu().numpy()
                fitted = head(frames, frames[0]).float().cpu().numpy()
            local.append(float(np.ptp(fitted)))
            global_.append(float(np.ptp(values)))
            correlation.append(float(np.corrcoef(values, fitted)[0, 1]) if np.ptp(values) * np.ptp(fitted) > 0
                               else 0.0)
            spots += len(frames)
            if drift_steps:
                length, direction = gradient_drift(local_reward_gradients(model, frames, drift_steps).numpy())
                drift.append(length)
                way_cosine.append(cosine_with_t_way(sim.state(), direction))
    finally:
        sim.close()
    result = {"local": local, "global": global_, "correlation": correlation, "local_mean": float(np.mean(local)),
              "global_mean": float(np.mean(global_)), "spots": spots}
    if drift:
        result.update(drift=drift, drift_way_cosine=way_cosine, drift_mean=float(np.mean(drift)),
                      drift_way_cosine_mean=float(np.mean(way_cosine)), drift_steps=drift_steps)
    return result


def local_model_gate(model: LocalModel, sequences: SequenceBatch, probes: list[GradientProbe],
                     config: LocalModelGateConfig | None = None, positions: dict[str, float] | None = None,
                     agent_only: dict[str, object] | None = None) -> GateReport:
    """The local-model gate on validation ``sequences`` (B, T) and simulator ``probes``; see the module doc.
    ``positions``: a :func:`state_probe` result, ``agent_only``: an :func:`agent_only_ranges` result, each reported
    beside the checks."""
    config = config or LocalModelGateConfig()
    begin = time.perf_counter()
    sensitivity = action_sensitivity(model, sequences, config.seed)
    agreement = gradient_agreement(model, probes)
    true_kl, shuffled_kl = sensitivity["true"]["next_latent_kl"], sensitivity["shuffled"]["next_latent_kl"]
    checks = [
        GateCheck("shuffled_over_true_kl", shuffled_kl / max(true_kl, 1e-9), config.min_shuffle_ratio, ">=",
                  f"next-latent KL with shuffled actions ({shuffled_kl:.3f}) / true ({true_kl:.3f}) nats"),
        GateCheck("gradient_cosine", agreement["gradient_cosine"], config.min_gradient_cosine, ">=",
                  f"cos(d r̂/d a local, simulator finite difference), mean ± standard error "
                  f"{agreement['gradient_cosine_standard_error']:.3f} over the larger-|FD| half of "
                  f"{agreement['probes']} probes ({config.task})"),
        GateCheck("reward_error_vs_constant",
                  sensitivity["true"]["reward_error"] - sensitivity["constant"]["reward_error"], 0.0, "<=",
                  f"one-step reward error ({sensitivity['true']['reward_error']:.3f}) minus a constant's "
                  f"({sensitivity['constant']['reward_error']:.3f})"),
    ]
    metrics = {"sequences": int(sequences.frames.shape[0]), "sequence_length": sequences.length,
               "action_sensitivity": sensitivity, "gradient": agreement, "epsilon": config.epsilon,
               "task": config.task}
    notes = []
    if positions is not None:
        metrics["state_probe"] = positions
        notes.append(f"state probe: agent position from the latent to {positions['agent_error']:.0f} u (the mean: "
                     f"{positions['agent_error_baseline']:.0f} u), the T's to {positions['block_error']:.0f} u "
                     f"({positions['block_error_baseline']:.0f} u); linear, {positions['samples']} stand-in states")
    if agent_only is not None:
        metrics["agent_only"] = agent_only
        local_range, global_range = agent_only["local_mean"], agent_only["global_mean"]
        correlation = float(np.mean(agent_only["correlation"]))
        notes.append(f"agent-only range (the T still at {len(agent_only['local'])} reset poses, the agent over its "
                     f"whole range, {agent_only['spots']} frames; correlation {correlation:.2f}): "
                     f"local reward head {local_range:.3f}, the global reward {global_range:.3f} "
                     f"({local_range / max(global_range, 1e-9):.1f} x)")
        if "drift" in agent_only:
            notes.append(f"gradient drift over the same frames ({agent_only['drift_steps']} held steps): "
                         f"{agent_only['drift_mean']:.2f} (1: one direction wherever the agent is), cosine of that "
                         f"direction with the T's way to its goal {agent_only['drift_way_cosine_mean']:+.2f} "
                         f"(near 1: the model moves the T without contact)")
    return GateReport("local_model", checks, metrics, time.perf_counter() - begin, notes)


__all__ = ["GradientProbe", "LocalModelGateConfig", "RewardOfFrames", "action_sensitivity", "agent_only_ranges",
           "cosine_agreement", "gradient_agreement",
           "local_model_gate", "local_reward_gradient", "linear_probe_errors", "simulator_probes",
           "state_probe"]
