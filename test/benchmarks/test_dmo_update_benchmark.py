"""benchmarks/dmo_update_vs_diffusion_backprop.py: the command's output, and that its two variants differ where
the paper says they do (backprop's actor gradient runs through the diffusion sampler, DMO's never reaches it)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dmo_update_vs_diffusion_backprop.py"
TINY = ["--preset", "tiny", "--image-size", "32", "--batch-size", "2", "--horizon", "2", "--repeats", "1",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("dmo_update_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _tiny_setting(bench, horizon: int = 3):
    return bench.Setting(preset="tiny", batch_size=2, horizon=horizon, image_size=32, repeats=1, warmup=0)


def test_command_prints_both_variants_and_their_ratios(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.run([sys.executable, str(SCRIPT), *TINY, "--json", str(out)], capture_output=True, text=True,
                             env=env, timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "memory ratio" in process.stdout and "time ratio" in process.stdout, process.stdout
    assert "goals (mem >= 10x, time >= 5x)" in process.stdout
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert row["horizon"] == 2 and row["batch_size"] == 2
    for variant in ("dmo", "backprop"):
        record = row[variant]
        assert record["status"] == "ok", record
        assert record["variant"] == variant and record["horizon"] == 2 and record["batch_size"] == 2
        assert record["time_s"] > 0 and len(record["times_s"]) == 1
        assert record["peak_memory_bytes"] > 0
    assert row["memory_ratio"] == pytest.approx(row["backprop"]["peak_memory_bytes"] / row["dmo"]["peak_memory_bytes"])
    assert row["time_ratio"] == pytest.approx(row["backprop"]["time_s"] / row["dmo"]["time_s"])
    assert row["memory_goal_met"] == (row["memory_ratio"] >= 10.0)
    assert row["time_goal_met"] == (row["time_ratio"] >= 5.0)


def test_partial_trained_runs_are_a_usage_error(tmp_path: Path) -> None:
    process = subprocess.run([sys.executable, str(SCRIPT), *TINY, "--world-model", str(tmp_path)],
                             capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=60)
    assert process.returncode == 2
    assert "--reward-run" in process.stderr and "--local-model" in process.stderr


def _norm(grads) -> float:
    return float(sum(g.pow(2).sum() for g in grads if g is not None)) ** 0.5


def test_backprop_gradient_runs_through_the_sampler(bench) -> None:
    setting = _tiny_setting(bench)
    models = bench.build_models(setting)
    world_parameters = list(models.world_model.parameters())
    sapo = bench.SAPOConfig.preset("tiny", horizon=setting.horizon)
    variant = bench.DiffusionBackprop(models, sapo, setting.batch_size, freeze_models=False)
    actor = list(variant.learner.actor.parameters())
    trajectory = variant.rollout()

    # Every reward is the goal energy of a sampled frame: it depends on the actor only through the world model.
    through_sampler = torch.autograd.grad(trajectory.rewards.sum(), actor, retain_graph=True, allow_unused=True)
    assert _norm(through_sampler) > 0
    # ...and the graph reaches the world model's weights.
    into_world = torch.autograd.grad(trajectory.rewards.sum(), world_parameters, retain_graph=True, allow_unused=True)
    assert sum(g is not None for g in into_world) > len(world_parameters) // 2
    assert _norm(into_world) > 0

    before = [p.detach().clone() for p in actor]
    logs = variant.learner.update(trajectory)
    assert logs["actor_grad_norm"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, actor, strict=True)), "the actor did not move"


def test_dmo_update_never_reaches_the_world_model(bench) -> None:
    setting = _tiny_setting(bench)
    models = bench.build_models(setting)
    world_parameters = list(models.world_model.parameters())
    assert all(p.requires_grad for p in world_parameters)  # so a gradient, were there a path, would show
    algorithm = bench.dmo_algorithm(models, setting)
    actor = list(algorithm.learner.actor.parameters())
    seen = {}
    update = algorithm.learner.update

    def spy(trajectory, **options):
        objective = trajectory.rewards.sum() + trajectory.features.sum()
        seen["world"] = torch.autograd.grad(objective, world_parameters, retain_graph=True, allow_unused=True)
        seen["actor"] = torch.autograd.grad(objective, actor, retain_graph=True, allow_unused=True)
        return update(trajectory, **options)

    algorithm.learner.update = spy
    logs = algorithm.train_epoch()
    assert all(g is None for g in seen["world"]), "DMO's trajectory must not hold the world model in its graph"
    assert _norm(seen["actor"]) > 0  # the gradient goes to the actor (through the local RSSM) instead
    assert logs["actor_grad_norm"] > 0
    assert all(p.grad is None for p in world_parameters)
    assert algorithm.samples == setting.batch_size * setting.horizon  # H world-model steps of B episodes


def test_backprop_graph_grows_with_the_horizon_and_dmo_does_not_hold_the_sampler(bench) -> None:
    """Bytes the autograd graph saves for backward: backprop's scale with H (every denoiser call's activations),
    and exceed DMO's at the same H (whose graph holds the local model only)."""

    def saved_bytes(build, horizon: int) -> int:
        setting = _tiny_setting(bench, horizon)
        run = build(bench.build_models(setting), setting)
        total = 0

        def pack(tensor):
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            run()
        return total

    def backprop(models, setting):
        sapo = bench.SAPOConfig.preset("tiny", horizon=setting.horizon)
        return bench.DiffusionBackprop(models, sapo, setting.batch_size).rollout

    def dmo(models, setting):
        return bench.dmo_algorithm(models, setting).train_epoch

    short, long = saved_bytes(backprop, 2), saved_bytes(backprop, 4)
    assert long > 1.8 * short
    assert long > 5 * saved_bytes(dmo, 4)
