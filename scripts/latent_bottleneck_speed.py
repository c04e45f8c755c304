"""How fast does the local model's encoder/decoder pair learn to carry the agent through each kind of bottleneck?

The local model's decoded states show no agent after the cpu preset's 1000 steps
(``scripts/local_model_action_response.py``), so its prior cannot respond to the action. This isolates the
image path: the local model's :class:`ImageEncoder` and :class:`ImageDecoder` (the chosen preset) trained as
an autoencoder on single dataset frames, with the local model's foreground-weighted summed squared error,
through one of these bottlenecks between the embedding and the decoder's features:

- ``continuous``: a linear layer, LayerNorm and SiLU (no categorical latent);
- ``draw``: 32 categoricals of 32 classes, a one-hot *draw* with straight-through gradients (the local model's
  training, DreamerV3's);
- ``mode``: the same categoricals at their mode (``--train-sample false``);
- ``probs``: the categoricals' probabilities themselves;
- ``gaussian``: a diagonal Gaussian of ``--gaussian-size`` dimensions, a reparameterised draw with a learned
  standard deviation >= 0.1 (PlaNet / DreamerV1's latent, ``--latent gaussian`` of the local model).

Every ``--eval-every`` steps it prints the validation reconstruction error (mean squared, [-1, 1] units) and the
fraction of reconstructions in which the agent is found (:func:`dmo_ros.sims.pusht_frames.locate_agent`, the
stand-in's colours; evaluation only), with its position error.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/latent_bottleneck_speed.py datasets/play --bottleneck draw
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dmo_ros.dataset.format import open_arrays
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.encoder import ImageDecoder, ImageEncoder, to_model_images
from dmo_ros.local_model.model import LocalModel
from dmo_ros.local_model.rssm import straight_through_sample, unimix_logits
from dmo_ros.sims.pusht_frames import locate_agent

BOTTLENECKS = ("continuous", "draw", "mode", "probs", "gaussian")


class Autoencoder(nn.Module):
    """The local model's encoder -> bottleneck -> the local model's decoder (its features: deter zeros + z)."""

    def __init__(self, config: LocalModelConfig, bottleneck: str, gaussian_size: int = 32) -> None:
        super().__init__()
        if bottleneck not in BOTTLENECKS:
            raise ValueError(f"unknown bottleneck {bottleneck!r}; choose one of {', '.join(BOTTLENECKS)}")
        self.config, self.bottleneck = config, bottleneck
        self.encoder, self.decoder = ImageEncoder(config), ImageDecoder(config)
        latent = config.stoch_size * config.classes
        if bottleneck == "gaussian":
            self.to_latent = nn.Linear(config.embed_size, 2 * gaussian_size)
            self.from_gaussian = nn.Linear(gaussian_size, latent)  # to the decoder's input size
        else:
            self.to_latent = (nn.Sequential(nn.Linear(config.embed_size, latent), nn.LayerNorm(latent), nn.SiLU())
                              if bottleneck == "continuous" else nn.Linear(config.embed_size, latent))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.to_latent(self.encoder(frames))
        if self.bottleneck == "gaussian":
            mean, std = x.chunk(2, -1)
            std = nn.functional.softplus(std) + 0.1
            x = self.from_gaussian(mean + std * torch.randn_like(std) if self.training else mean)
        elif self.bottleneck != "continuous":
            logits = unimix_logits(x.view(-1, self.config.stoch_size, self.config.classes), self.config.unimix)
            z = logits.softmax(-1) if self.bottleneck == "probs" else \
                straight_through_sample(logits, sample=self.bottleneck == "draw")
            x = z.flatten(1)
        return self.decoder(torch.cat([x.new_zeros(x.shape[0], self.config.deter_size), x], 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a Push-T dataset folder")
    parser.add_argument("--bottleneck", choices=BOTTLENECKS, default="draw")
    parser.add_argument("--gaussian-size", type=int, default=32, help="dimensions of the gaussian bottleneck")
    parser.add_argument("--preset", default="cpu", help="local model preset of the encoder/decoder (default cpu)")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=128, help="frames per step (the cpu preset's 16 x 8)")
    parser.add_argument("--lr", type=float, default=3e-4, help="AdamW rate (the cpu preset's)")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    frames = open_arrays(args.dataset)["frames"]
    count, size = len(frames), frames.shape[1]
    val = np.arange(count - 256, count)  # the last 256 frames, never trained on
    config = LocalModelConfig.preset(args.preset, 2, image_size=size)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Autoencoder(config, args.bottleneck, args.gaussian_size)
    reference = LocalModel(config)

    def weigh(target: torch.Tensor) -> torch.Tensor:  # the local model's own pixel weights, one frame per item
        return reference._pixel_weights(target[:, None])[:, 0]

    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    batch_of = lambda index: torch.from_numpy(np.ascontiguousarray(frames[np.sort(index)])).permute(0, 3, 1, 2)  # noqa: E731
    real = batch_of(val)
    real_position, real_seen = locate_agent(real.numpy())  # the real frames' agent, found once
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = batch_of(rng.integers(0, count - 256, args.batch_size))
        target = to_model_images(batch)
        loss = ((model(batch) - target).pow(2) * weigh(target)).sum((1, 2, 3)).mean()
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        optimiser.step()
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                decoded = model(real).clamp(-1, 1)
            model.train()
            mse = float((decoded - to_model_images(real)).pow(2).mean())
            position, seen = locate_agent(((decoded + 1) * 127.5).round().byte().numpy())
            both = seen & real_seen
            error = np.linalg.norm(position[both] - real_position[both], axis=-1).mean() if both.any() else np.nan
            visible = seen[real_seen].mean() if real_seen.any() else np.nan  # of the frames that show it
            print(f"{args.bottleneck} step {step}: {time.perf_counter() - start:.0f} s, val mse {mse:.4f}, agent "
                  f"visible {visible:.3f}, position error {error:.2f} px", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
