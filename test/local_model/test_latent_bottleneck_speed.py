"""``scripts/latent_bottleneck_speed.py``: the local model's image path trained through each bottleneck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from script_modules import load_script

from dmo_ros.dataset.format import write_dataset
from dmo_ros.local_model.config import LocalModelConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    frames = np.random.default_rng(0).integers(0, 255, size=(300, 32, 32, 3), dtype=np.uint8)
    actions = np.zeros((300, 2), dtype=np.float32)
    return write_dataset(tmp_path_factory.mktemp("frames") / "dataset", frames, actions, [150, 150])


@pytest.mark.parametrize("bottleneck", ["continuous", "draw", "mode", "probs", "gaussian"])
def test_each_bottleneck_trains_and_reports(bottleneck, dataset, capsys):
    script = load_script("scripts/latent_bottleneck_speed.py")
    assert script.main([str(dataset), "--bottleneck", bottleneck, "--preset", "tiny", "--steps", "2",
                        "--batch-size", "4", "--eval-every", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{bottleneck} step") for line in lines)
    assert all(np.isfinite(float(line.split("val mse ")[1].split(",")[0])) for line in lines)


def test_the_categorical_bottlenecks_pass_one_hot_or_probabilities():
    script = load_script("scripts/latent_bottleneck_speed.py")
    config = LocalModelConfig.preset("tiny", 2, image_size=32)
    frames = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    seen = {}
    for bottleneck in ("mode", "probs"):
        model = script.Autoencoder(config, bottleneck)
        model.decoder.forward = lambda features, name=bottleneck: seen.setdefault(name, features)
        model(frames)
    latent = {name: f[:, config.deter_size:].view(3, config.stoch_size, config.classes) for name, f in seen.items()}
    assert torch.equal(latent["mode"].sum(-1), torch.ones(3, config.stoch_size))
    assert set(latent["mode"].unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(latent["probs"].sum(-1), torch.ones(3, config.stoch_size)) and latent["probs"].min() > 0
    with pytest.raises(ValueError, match="unknown bottleneck"):
        script.Autoencoder(config, "vq")
