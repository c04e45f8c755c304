"""Pictures of evaluation episodes: what the policy did, as the stand-in's camera saw it (``dmo-eval-policy --video``).

A number says *how often* a policy fails; the episodes say *how*. :class:`EpisodeVideos` wraps any
:class:`~dmo_ros.policy.episodes.Controller` and keeps the simulator's camera render before every step; after each
episode it writes

- ``episode_EEE_success.gif`` / ``episode_EEE_fail.gif``: the whole episode at the control rate (one GIF frame per
  control step, the final state last), upscaled with nearest neighbour, the step and outcome written on top;

and at the end (:meth:`EpisodeVideos.write_contact_sheet`) ``episodes.png``: one row per episode, its start, a few
evenly spaced frames and its final frame, labelled with the outcome, so all failures can be compared at a glance.

Frames are the simulator's ``render()`` (H, W, 3) uint8 (the 96 x 96 render of the Push-T stand-in, the Go2's
camera), not the policy's resized input. Plain PIL; no ROS, no torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageDraw

from dmo_ros.output_paths import output_folder
from dmo_ros.policy.episodes import Controller

SHEET_COLUMNS = 8
"""Frames per episode in the contact sheet: the start, evenly spaced frames, the final frame."""

Result = TypeVar("Result")

LABEL_HEIGHT = 12
"""Pixels above each GIF frame and each contact-sheet row for the text."""


@dataclass
class _Episode:
    index: int
    frames: list[np.ndarray]
    success: bool
    summary: str


@dataclass
class EpisodeVideos:
    """Record the camera frames of evaluation episodes and write them as GIFs and a contact sheet into ``out_dir``.

    Usage: ``controller = videos.wrap(controller)`` before the episodes; ``videos.finish(sim, success, summary)``
    after each (it adds the final frame and writes the episode's GIF); ``videos.write_contact_sheet()`` at the end.
    ``scale`` upscales the frames (nearest neighbour); ``frame_ms`` is the GIF's time per control step (200 ms:
    real time at 5 Hz). ``max_episodes`` limits how many episodes are kept (the rest only counted), since GIFs of
    50 long episodes fill megabytes.
    """

    out_dir: Path
    scale: int = 3
    frame_ms: int = 200
    max_episodes: int | None = None
    episodes: list[_Episode] = field(default_factory=list)
    _frames: list[np.ndarray] = field(default_factory=list)
    _count: int = 0

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.scale}")
        if self.frame_ms < 1:
            raise ValueError(f"frame_ms must be >= 1, got {self.frame_ms}")
        if self.max_episodes is not None and self.max_episodes < 0:
            raise ValueError(f"max_episodes must be >= 0 or None, got {self.max_episodes}")
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def wrap(self, controller: Controller) -> Controller:
        """``controller`` that also keeps the simulator's frame before every action."""
        return _RecordingController(controller, self)

    def _keeping(self) -> bool:
        return self.max_episodes is None or self._count < self.max_episodes

    def _record(self, sim: Any) -> None:
        if self._keeping():
            self._frames.append(np.asarray(sim.render(), dtype=np.uint8).copy())

    def finish(self, sim: Any, success: bool, summary: str) -> Path | None:
        """End the current episode: add the simulator's final frame and write its GIF; returns the GIF's path
        (None once ``max_episodes`` were written)."""
        path = None
        if self._keeping():
            self._record(sim)
            episode = _Episode(self._count, self._frames, bool(success), summary)
            self.episodes.append(episode)
            path = self.out_dir / f"episode_{episode.index:03d}_{'success' if success else 'fail'}.gif"
            self._write_gif(path, episode)
        self._frames = []
        self._count += 1
        return path

    def _labelled(self, frame: np.ndarray, text: str, colour: tuple[int, int, int]) -> Image.Image:
        big = frame.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
        image = Image.new("RGB", (big.shape[1], big.shape[0] + LABEL_HEIGHT), "white")
        image.paste(Image.fromarray(big), (0, LABEL_HEIGHT))
        ImageDraw.Draw(image).text((2, 0), text, fill=colour)
        return image

    def _write_gif(self, path: Path, episode: _Episode) -> None:
        last = len(episode.frames) - 1
        colour = (0, 120, 0) if episode.success else (180, 0, 0)
        images = [self._labelled(frame, f"ep {episode.index} step {t}/{last}", (0, 0, 0)) for t, frame in
                  enumerate(episode.frames[:-1])]
        outcome = "success" if episode.success else "fail"
        images.append(self._labelled(episode.frames[-1], f"ep {episode.index} {outcome} @ {last}", colour))
        durations = [self.frame_ms] * (len(images) - 1) + [max(self.frame_ms, 1500)]  # hold the outcome
        images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)

    def write_contact_sheet(self, name: str = "episodes.png") -> Path | None:
        """``episodes.png``: one row per kept episode (start, evenly spaced frames, final frame) with its outcome
        and summary; None if no episode was kept."""
        if not self.episodes:
            return None
        rows = []
        for episode in self.episodes:
            picks = np.unique(np.linspace(0, len(episode.frames) - 1, SHEET_COLUMNS).round().astype(int))
            frames = [episode.frames[i].repeat(self.scale, 0).repeat(self.scale, 1) for i in picks]
            height, width = frames[0].shape[:2]
            row = Image.new("RGB", (SHEET_COLUMNS * (width + 2), height + LABEL_HEIGHT), "white")
            for column, (frame, step) in enumerate(zip(frames, picks, strict=True)):
                row.paste(Image.fromarray(frame), (column * (width + 2), LABEL_HEIGHT))
                ImageDraw.Draw(row).text((column * (width + 2) + 2, LABEL_HEIGHT + 1), str(step), fill=(90, 90, 90))
            colour = (0, 120, 0) if episode.success else (180, 0, 0)
            ImageDraw.Draw(row).text((2, 0), f"episode {episode.index}: {episode.summary}", fill=colour)
            rows.append(row)
        sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 4 for r in rows)), "white")
        top = 0
        for row in rows:
            sheet.paste(row, (0, top))
            top += row.height + 4
        path = self.out_dir / name
        sheet.save(path)
        return path


def recorded_episode(videos: EpisodeVideos | None, controller: Controller, run: Callable[[Controller, Any], Result],
                     describe: Callable[[Result], tuple[bool, str]]) -> Callable[[Any], Result]:
    """One evaluation episode as a function of the simulator: ``run(controller, sim)``; given ``videos``, run with
    the recording controller and finished with ``describe(result)`` = (success, the contact sheet's summary)."""
    if videos is None:
        return lambda sim: run(controller, sim)

    def episode(sim: Any) -> Result:
        result = run(videos.wrap(controller), sim)
        videos.finish(sim, *describe(result))
        return result

    return episode


class _RecordingController:
    """A controller that hands every frame to :class:`EpisodeVideos` before acting."""

    def __init__(self, controller: Controller, videos: EpisodeVideos) -> None:
        self.controller, self.videos = controller, videos

    def reset(self, sim: Any) -> None:
        self.controller.reset(sim)

    def act(self, sim: Any) -> np.ndarray:
        self.videos._record(sim)
        return self.controller.act(sim)


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """``--video DIR`` and ``--video-episodes N``, as both evaluations' command lines take them."""
    parser.add_argument("--video", type=output_folder, default=None, metavar="DIR",
                        help="write each episode of the policy (direct mode) as a GIF of the camera frames, "
                             "episode_EEE_success.gif / _fail.gif, and all of them as the contact sheet episodes.png, "
                             "into DIR")
    parser.add_argument("--video-episodes", type=int, default=None, metavar="N",
                        help="with --video: keep only the first N episodes' pictures (default all)")


def check_video_episodes(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    """Refuse (``parser.error``) a negative ``--video-episodes``."""
    if options.video_episodes is not None and options.video_episodes < 0:
        parser.error(f"--video-episodes must be >= 0, got {options.video_episodes}")


def check_video_options(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    """Refuse (``parser.error``) video options that cannot be honoured: a negative count, or no episodes of a
    policy run in-process (``--ceilings-only``, ``--mode ros``)."""
    check_video_episodes(parser, options)
    if options.video is not None and not options.random and (options.run_dir is None or options.mode == "ros"):
        parser.error("--video records the policy's episodes in direct mode: give a RUN_DIR (or --random) and "
                     "--mode direct or both")


def videos(options: argparse.Namespace) -> EpisodeVideos | None:
    """The ``--video DIR`` recorder of a command line's options (None without ``--video``)."""
    if options.video is None:
        return None
    return EpisodeVideos(options.video, max_episodes=options.video_episodes)
