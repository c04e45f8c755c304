"""Evaluation episodes as pictures: one GIF per episode (every control step and the final state) and a contact
sheet, from the simulator's own camera; ``dmo-eval-policy --video``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dmo_ros.dataset.format import write_dataset
from dmo_ros.policy.episode_video import LABEL_HEIGHT, EpisodeVideos
from dmo_ros.policy.episodes import StillController
from dmo_ros.policy.evaluate import EvalConfig, RandomController, evaluate_controller, main


def tiny_dataset(folder):
    """A dataset giving the random policy its action limits (0.25 m/s) and image size."""
    rng = np.random.default_rng(0)
    return write_dataset(folder, rng.integers(0, 256, size=(12, 24, 32, 3), dtype=np.uint8),
                         np.full((12, 2), 0.25, np.float32), [6, 6])


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


def test_every_step_and_the_final_state_are_in_the_episode_gif(tmp_path):
    config = EvalConfig(episodes=2, max_steps=5, task="push_region")
    videos = EpisodeVideos(tmp_path / "video", scale=2)
    result = evaluate_controller(RandomController(limit=0.25, seed=1), config, videos=videos)
    gifs = sorted((tmp_path / "video").glob("episode_*.gif"))
    assert [p.name for p in gifs] == [f"episode_{e:03d}_{'success' if r.success else 'fail'}.gif"
                                      for e, r in enumerate(result.episodes)]
    for path, episode in zip(gifs, result.episodes, strict=True):
        frames = gif_frames(path)
        assert len(frames) == episode.steps + 1  # the start, then the state after each action
        assert frames[0].shape == (96 * 2 + LABEL_HEIGHT, 96 * 2, 3)
    # A random policy moves the agent: the episode's first and last pictures differ below the label.
    first, last = gif_frames(gifs[0])[0], gif_frames(gifs[0])[-1]
    assert np.abs(first[LABEL_HEIGHT:].astype(int) - last[LABEL_HEIGHT:]).max() > 50
    sheet = Image.open(tmp_path / "video" / "episodes.png")
    assert sheet.height >= 2 * (96 * 2 + LABEL_HEIGHT)  # one row per episode


def test_a_still_robot_gives_identical_frames_and_max_episodes_limits_the_files(tmp_path):
    config = EvalConfig(episodes=3, max_steps=4, task="push_region")
    videos = EpisodeVideos(tmp_path / "v", scale=1, max_episodes=1)
    evaluate_controller(StillController(2), config, videos=videos)
    gifs = list((tmp_path / "v").glob("episode_*.gif"))
    assert len(gifs) == 1 and len(videos.episodes) == 1
    frames = gif_frames(gifs[0])
    assert len(frames) == 5 and all((f[LABEL_HEIGHT:] == frames[0][LABEL_HEIGHT:]).all() for f in frames[:-1])


@pytest.mark.parametrize("field, value", [("scale", 0), ("frame_ms", 0), ("max_episodes", -1)])
def test_bad_settings_are_refused_by_name(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        EpisodeVideos(tmp_path, **{field: value})


def test_cli_writes_the_gifs_and_the_sheet(tmp_path, capsys):
    dataset = tiny_dataset(tmp_path / "ds")
    out = tmp_path / "video"
    code = main(["--random", "--dataset", str(dataset), "--episodes", "2", "--max-steps", "3", "--no-ceilings",
                 "--quiet", "--video", str(out), "--video-episodes", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(list(out.glob("episode_000_*.gif"))) == 1 and not list(out.glob("episode_001_*"))
    assert (out / "episodes.png").is_file() and f"into {out}" in captured.out


def test_cli_refuses_video_without_direct_episodes(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        main(["--ceilings-only", "--video", str(tmp_path / "v")])
    assert "--video records the policy's episodes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--random", "--dataset", "d", "--video", str(tmp_path / "file")])
    assert "is a file, not a folder" in capsys.readouterr().err
