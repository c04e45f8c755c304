"""Does a Go2 local model's prior turn the view where the command says? Real frames beside decoded imagination.

The Push Cube local-model gate reads the one-step reward gradient (``scripts/push_cube_gradient_gauge.py``); this
looks one step earlier, at the pictures. From ``--states`` states the scripted operator reached on the Push Cube
stand-in (``--seed``; evaluation-side: the stand-in replays each command from the same state), it holds each of
zero, yaw ±, forward and sideways ± for ``--horizon`` steps, in the simulator and in the local model's prior
(``RSSM.imagine``, categorical modes, from the posterior of the last ``sequence_length`` real frames), decodes the
prior states and writes a contact sheet: per state a row of real frames and a row of imagined ones (first column:
the last real frame and its decoded posterior).

It also prints, per command, how the imagined change agrees with the real one (:func:`response_agreement`):
the cosine between (frame under the command − frame under zero) imagined and real, and the ratio of their sizes.
A prior that ignores the action reads 0 and 0; one that turns the view the right way, positive cosines.

    python scripts/push_cube_action_sheet.py runs/go2aw/local_p1 --out reports/go2_action_sheet.png

Needs a local model with a decoder (``decoder_loss_scale`` > 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dmo_ros.dataset.images import resize
from dmo_ros.dmo.replay import to_uint8_frames
from dmo_ros.local_model.model import LocalModel, load_local_model
from dmo_ros.local_model.rssm import features
from dmo_ros.training.checkpoint import CheckpointError, read_run_config

COMMANDS = {"zero": (0.0, 0.0, 0.0), "yaw +": (0.0, 0.0, 0.8), "yaw -": (0.0, 0.0, -0.8), "forward": (0.4, 0.0, 0.0),
            "left": (0.0, 0.4, 0.0), "right": (0.0, -0.4, 0.0)}
"""Held commands [vx m/s, vy m/s, yaw rate rad/s]; ``zero`` is the reference of :func:`response_agreement`."""


def response_agreement(real: np.ndarray, imagined: np.ndarray, real_zero: np.ndarray,
                       imagined_zero: np.ndarray) -> tuple[float, float]:
    """(cosine, size ratio) of the imagined change (``imagined - imagined_zero``) against the real one (``real -
    real_zero``), frames (..., H, W, 3) in any one scale, flattened. The cosine is 0 where either change is 0; the
    ratio is |imagined change| / |real change| (0 for a real change of 0)."""
    real_change = (np.asarray(real, np.float64) - real_zero).ravel()
    imagined_change = (np.asarray(imagined, np.float64) - imagined_zero).ravel()
    real_norm, imagined_norm = np.linalg.norm(real_change), np.linalg.norm(imagined_change)
    cosine = float(real_change @ imagined_change / (real_norm * imagined_norm)) if real_norm * imagined_norm else 0.0
    return cosine, float(imagined_norm / real_norm) if real_norm else 0.0


def _to_uint8(decoded: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8."""
    return to_uint8_frames(decoded.movedim(-3, -1)).numpy()


@torch.no_grad()
def rollouts(model: LocalModel, states: int, horizon: int, history: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Per state: ``context`` (H, W, 3), ``posterior`` (H, W, 3), and per command name ``real_<name>`` and
    ``imagined_<name>``, each (horizon, H, W, 3) uint8."""
    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim
    from dmo_ros.teleop.scripted import make_operator, push_cube_observation

    size = model.config.image_size
    rng = np.random.default_rng(seed)
    sim = PushCubeSim(PushCubeConfig(seed=seed + 10_000))
    operator = make_operator("go2")
    results = []
    try:
        for index in range(states):
            if index:
                sim.reset()
            policy = operator.expert if index % 2 == 0 else operator.explorer
            policy.begin(push_cube_observation(sim.state()), rng)
            frames, actions = [], []
            for _ in range(history + int(rng.integers(4, 40))):
                action = np.asarray(policy.act(push_cube_observation(sim.state())), dtype=np.float64)
                sim.step(action)
                actions.append(action)
                frames.append(resize(sim.render(), size, size, "crop"))
            snapshot = sim.snapshot()
            context = torch.from_numpy(np.stack(frames[-history:])).permute(0, 3, 1, 2)[None]
            # frames[i] is the frame after actions[i]; RSSM.observe pairs each frame with the action leading out of
            # it (the last frame's is unused), so the context's actions are the next ones.
            leading_out = np.stack([*actions[len(actions) - history + 1:], np.zeros(3)])
            posteriors, _ = model.observe(context, torch.from_numpy(leading_out).float()[None], sample=False)
            last = posteriors.at(-1)
            result = {"context": frames[-1], "posterior": _to_uint8(model.decoder(features(last))[0])}
            for name, command in COMMANDS.items():
                sim.restore(snapshot)
                real = []
                for _ in range(horizon):
                    sim.step(np.asarray(command, dtype=np.float64))
                    real.append(resize(sim.render(), size, size, "crop"))
                held = torch.tensor([command] * horizon, dtype=torch.float32)[None]
                priors = model.rssm.imagine(last, held, sample=False)
                result[f"real_{name}"] = np.stack(real)
                result[f"imagined_{name}"] = _to_uint8(model.decoder(features(priors))[0])
            results.append(result)
    finally:
        sim.close()
    return results


def contact_sheet(results: list[dict[str, np.ndarray]]) -> np.ndarray:
    """(rows, columns, 3) uint8: per state a real row and an imagined row, a white gap between states."""
    blocks = []
    for result in results:
        real = [result["context"], *(frame for name in COMMANDS for frame in result[f"real_{name}"])]
        imagined = [result["posterior"], *(frame for name in COMMANDS for frame in result[f"imagined_{name}"])]
        real_row, imagined_row = np.concatenate(real, 1), np.concatenate(imagined, 1)
        blocks += [real_row, imagined_row, np.full((4, *real_row.shape[1:]), 255, np.uint8)]
    return np.concatenate(blocks[:-1], 0)


def agreement_table(results: list[dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Per command (not zero): mean ± standard error over states of :func:`response_agreement` at the last step."""
    table = {}
    for name in COMMANDS:
        if name == "zero":
            continue
        pairs = np.array([response_agreement(r[f"real_{name}"][-1], r[f"imagined_{name}"][-1], r["real_zero"][-1],
                                             r["imagined_zero"][-1]) for r in results])
        error = pairs.std(0, ddof=1) / np.sqrt(len(pairs)) if len(pairs) > 1 else np.zeros(2)
        table[name] = {"cosine": float(pairs[:, 0].mean()), "cosine_standard_error": float(error[0]),
                       "size_ratio": float(pairs[:, 1].mean())}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("local_model", type=Path, help="dmo-train-local-model run on Go2 data (with a decoder)")
    parser.add_argument("--out", type=Path, required=True, help="the contact sheet (PNG); the numbers go beside it")
    parser.add_argument("--states", type=int, default=16, help="operator states (the sheet shows the first 4)")
    parser.add_argument("--horizon", type=int, default=3, help="steps each command is held")
    parser.add_argument("--seed", type=int, default=3)
    options = parser.parse_args(argv)
    try:  # a folder that is not a local-model run: its message, not a traceback
        model = load_local_model(options.local_model, "cpu").eval()
    except CheckpointError as error:
        parser.error(str(error))
    if model.decoder is None:
        raise SystemExit(f"{options.local_model} has no decoder (decoder_loss_scale 0): nothing to draw")
    history = int(read_run_config(options.local_model).get("sequence_length", 8))
    results = rollouts(model, options.states, options.horizon, history, options.seed)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(results[:4])).save(options.out)
    table = agreement_table(results)
    options.out.with_suffix(".json").write_text(json.dumps(table, indent=1) + "\n")
    print(f"{options.out}: columns: last real frame (imagined row: its decoded posterior), then "
          + ", ".join(f"{name} x{options.horizon}" for name in COMMANDS) + "; rows: real, imagined per state")
    print(f"imagined vs real change from the zero command after {options.horizon} steps, {len(results)} states "
          f"(seed {options.seed}):")
    print("| command | cosine | size ratio |")
    print("|---|---:|---:|")
    for name, numbers in table.items():
        print(f"| {name} | {numbers['cosine']:.3f} ± {numbers['cosine_standard_error']:.3f} | "
              f"{numbers['size_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
