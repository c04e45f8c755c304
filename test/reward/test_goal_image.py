"""Goal images: converted with a notice when fixable, refused with a message that names the file otherwise."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dmo_ros.dataset.format import write_dataset
from dmo_ros.reward.goal_image import GoalImageError, load_goal_image, main, standin_goal_image


def _rgb(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _load(path: Path, size=(64, 64)) -> tuple[np.ndarray, list[str]]:
    notices: list[str] = []
    return load_goal_image(path, size, notify=notices.append), notices


def test_png_of_the_right_size_loads_unchanged_and_silently(tmp_path: Path) -> None:
    pixels = _rgb(64, 64)
    Image.fromarray(pixels).save(tmp_path / "goal.png")
    loaded, notices = _load(tmp_path / "goal.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (64, 64, 3)
    assert np.array_equal(loaded, pixels) and notices == []


def test_wrong_size_is_centre_cropped_and_resized_with_a_notice(tmp_path: Path, caplog) -> None:
    # 60 x 120: a red left quarter, a green middle half, a blue right quarter. The centre crop to a
    # square keeps only the green middle.
    pixels = np.zeros((60, 120, 3), np.uint8)
    pixels[:, :30, 0] = 255
    pixels[:, 30:90, 1] = 255
    pixels[:, 90:, 2] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    with caplog.at_level(logging.WARNING, logger="dmo_ros.reward.goal_image"):
        loaded, notices = _load(tmp_path / "wide.png", (32, 32))
    assert loaded.shape == (32, 32, 3)
    assert (loaded[..., 1] == 255).all() and (loaded[..., [0, 2]] == 0).all()
    assert len(notices) == 1 and "wide.png" in notices[0] and "120x60 to 32x32" in notices[0]
    assert "centre crop" in notices[0]
    assert not caplog.records  # told once, to notify: dmo-train-policy printed it, and the log again
    with caplog.at_level(logging.WARNING, logger="dmo_ros.reward.goal_image"):
        load_goal_image(tmp_path / "wide.png", (32, 32))
    assert [record.message for record in caplog.records] == notices  # no notify: logged


def test_jpeg_loads(tmp_path: Path) -> None:
    pixels = np.full((64, 64, 3), (200, 30, 90), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "goal.jpg", quality=95)
    loaded, notices = _load(tmp_path / "goal.jpg")
    assert np.abs(loaded.astype(int) - pixels).max() <= 3 and notices == []  # RGB order, not BGR


@pytest.mark.parametrize("mode,expected", [("L", "grayscale converted to RGB"), ("RGBA", "alpha channel dropped"),
                                           ("LA", "alpha"), ("P", None)])
def test_grayscale_alpha_and_palette_become_rgb(tmp_path: Path, mode: str, expected: str | None) -> None:
    pixels = _rgb(64, 64)
    image = Image.fromarray(pixels).convert(mode)
    image.save(tmp_path / "goal.png")
    loaded, notices = _load(tmp_path / "goal.png")
    assert loaded.shape == (64, 64, 3) and loaded.dtype == np.uint8
    reference = np.array(image.convert("RGB"))
    assert np.array_equal(loaded, reference)
    if expected is None:
        assert notices == []
    else:
        assert len(notices) == 1 and expected in notices[0]


def test_npy_arrays(tmp_path: Path) -> None:
    pixels = _rgb(64, 64)
    np.save(tmp_path / "hwc.npy", pixels)
    assert np.array_equal(_load(tmp_path / "hwc.npy")[0], pixels)
    np.save(tmp_path / "chw.npy", pixels.transpose(2, 0, 1).copy())
    loaded, notices = _load(tmp_path / "chw.npy")
    assert np.array_equal(loaded, pixels) and "channels-first" in notices[0]
    np.save(tmp_path / "gray.npy", pixels[..., 0].copy())
    loaded, notices = _load(tmp_path / "gray.npy")
    assert np.array_equal(loaded, np.repeat(pixels[..., :1], 3, axis=2)) and "grayscale" in notices[0]


@pytest.mark.parametrize("name,writer,message", [
    ("deep.png", lambda p: cv2.imwrite(str(p), np.full((8, 8, 3), 40000, np.uint16)), "16-bit"),
    ("deep_gray.png", lambda p: cv2.imwrite(str(p), np.full((8, 8), 40000, np.uint16)), "16-bit"),
    ("float.tiff", lambda p: cv2.imwrite(str(p), np.full((8, 8, 3), 0.5, np.float32)), "float pixels"),
    ("float.npy", lambda p: np.save(p, np.full((8, 8, 3), 0.5, np.float32)), "float pixels"),
    ("int16.npy", lambda p: np.save(p, np.zeros((8, 8, 3), np.int16)), "16-bit"),
    ("bool.npy", lambda p: np.save(p, np.zeros((8, 8, 3), bool)), "not an image"),
    ("deep_stack.npy", lambda p: np.save(p, np.zeros((1, 2, 8, 8, 3), np.uint8)), "5-D array"),
    ("row.npy", lambda p: np.save(p, np.zeros(8, np.uint8)), "1-D array"),
    ("five.npy", lambda p: np.save(p, np.zeros((8, 8, 5), np.uint8)), "5 channels"),
    ("nothing.npy", lambda p: np.save(p, np.zeros((0, 8, 3), np.uint8)), "empty"),
    ("objects.npy", lambda p: np.save(p, np.array([{"a": 1}]), allow_pickle=True), "not a NumPy .npy array"),
    ("garbage.png", lambda p: p.write_bytes(b"not a picture at all" * 10), "not a readable picture"),
    ("empty.png", lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
    ("missing.png", lambda p: None, "no such file"),
    ("folder.png", lambda p: p.mkdir(), "is a folder"),
])
def test_unusable_images_are_refused_with_the_file_and_the_fix(tmp_path: Path, name: str, writer, message: str) -> None:
    path = tmp_path / name
    writer(path)
    with pytest.raises(GoalImageError, match=message) as error:
        load_goal_image(path)
    assert str(path) in str(error.value)


def test_cli_renders_the_standin_goal(tmp_path: Path, capsys) -> None:
    assert main(["--robot", "pusht", "-o", str(tmp_path / "goal.png")]) == 0
    assert "goal.png" in capsys.readouterr().out
    saved = np.array(Image.open(tmp_path / "goal.png"))
    assert saved.shape == (96, 96, 3)  # the stand-in camera's native picture, like a real camera's
    assert np.array_equal(saved, standin_goal_image("pusht", seed=0))
    green = (saved[..., 1] > 200) & (saved[..., 0] < 180)
    assert green.sum() < 0.2 * (saved[..., 0] < 200).sum()  # the block covers the green goal T
    loaded, notices = _load(tmp_path / "goal.png")
    assert loaded.shape == (64, 64, 3) and "96x96 to 64x64" in notices[0]
    assert main(["-o", str(tmp_path / "small.npy"), "--size", "64", "64"]) == 0
    assert np.load(tmp_path / "small.npy").shape == (64, 64, 3)


def test_cli_from_dataset_and_errors(tmp_path: Path, capsys) -> None:
    frames = np.stack([np.full((16, 16, 3), k, np.uint8) for k in range(5)])
    folder = write_dataset(tmp_path / "ds", frames, np.zeros((5, 2), np.float32), [5])
    assert main(["--from-dataset", str(folder), "--sample", "3", "-o", str(tmp_path / "g.png")]) == 0
    assert (np.array(Image.open(tmp_path / "g.png")) == 3).all()
    assert main(["--from-dataset", str(folder), "--sample", "9", "-o", str(tmp_path / "h.png")]) == 2
    assert "outside the dataset's 5 samples" in capsys.readouterr().err
    assert main(["--from-dataset", str(tmp_path), "-o", str(tmp_path / "h.png")]) == 2
    assert main(["-o", str(tmp_path / "goal.gif")]) == 2
    assert ".png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--robot", "go2", "-o", str(tmp_path / "goal.png")])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("size", [["0", "0"], ["-3", "64"], ["64", "0"]])
def test_cli_refuses_a_size_below_one_pixel(tmp_path: Path, size: list[str], capsys) -> None:
    """``--size 0 0`` used to end in a ZeroDivisionError traceback inside the resize."""
    assert main(["-o", str(tmp_path / "goal.png"), "--size", *size]) == 2
    assert "image size must be at least 1x1 pixels" in capsys.readouterr().err
    assert not (tmp_path / "goal.png").exists()


def test_a_goal_set_loads_as_a_stack_and_is_checked_like_one_picture(tmp_path: Path) -> None:
    pictures = np.stack([_rgb(32, 32), _rgb(32, 32)[::-1]])
    np.save(tmp_path / "goals.npy", pictures)
    notices: list[str] = []
    loaded = load_goal_image(tmp_path / "goals.npy", (16, 16), notify=notices.append)
    assert loaded.shape == (2, 16, 16, 3) and loaded.dtype == np.uint8
    assert len(notices) == 1 and "32x32 to 16x16" in notices[0]  # said once for the set, not per picture
    np.save(tmp_path / "empty.npy", np.zeros((0, 16, 16, 3), np.uint8))
    with pytest.raises(GoalImageError, match="0 pictures"):
        load_goal_image(tmp_path / "empty.npy", (16, 16))
    np.save(tmp_path / "float.npy", pictures.astype(np.float32))
    with pytest.raises(GoalImageError, match="float pixels"):
        load_goal_image(tmp_path / "float.npy", (16, 16))


def test_cli_takes_the_ends_of_successful_demonstrations_as_a_goal_set(tmp_path: Path, capsys) -> None:
    """Three 6-sample episodes, intent on for samples 2-4 of each; the first and last runs carry the success
    milestone. Their last frames are the set; the failed run's end is left out."""
    frames = np.stack([np.full((16, 16, 3), k, np.uint8) for k in range(18)])
    intent = np.tile(np.r_[0, 0, 1, 1, 1, 0].astype(bool), 3)
    milestone = np.zeros(18, np.float32)
    milestone[[3, 15]] = 1.0
    folder = write_dataset(tmp_path / "ds", frames, np.zeros((18, 2), np.float32), [6, 6, 6], intent=intent,
                           milestone=milestone)
    out = tmp_path / "goals.npy"
    assert main(["--from-dataset", str(folder), "--demonstration-ends", "8", "-o", str(out)]) == 0
    assert "a goal set of 2 demonstration ends" in capsys.readouterr().out
    assert [int(p[0, 0, 0]) for p in np.load(out)] == [4, 16]
    assert Image.open(tmp_path / "goals.png").size == (32, 16)  # the contact sheet to look at
    assert load_goal_image(out, (16, 16)).shape == (2, 16, 16, 3)
    unmarked = write_dataset(tmp_path / "plain", frames, np.zeros((18, 2), np.float32), [6, 6, 6], intent=intent)
    assert main(["--from-dataset", str(unmarked), "--demonstration-ends", "2", "-o", str(out)]) == 0
    assert [int(p[0, 0, 0]) for p in np.load(out)] == [4, 16]  # no milestones: every run counts, evenly spread
    assert main(["--from-dataset", str(unmarked), "--demonstration-ends", "2", "-o", str(tmp_path / "g.png")]) == 2
    assert "an .npy output" in capsys.readouterr().err
    idle = write_dataset(tmp_path / "idle", frames, np.zeros((18, 2), np.float32), [6, 6, 6])
    assert main(["--from-dataset", str(idle), "--demonstration-ends", "2", "-o", str(out)]) == 2
    assert "no demonstration" in capsys.readouterr().err


def test_cli_draws_a_goal_set_with_the_agent_in_k_places(tmp_path: Path, capsys) -> None:
    out = tmp_path / "goals.npy"
    assert main(["--task", "push_region", "--agent-spots", "3", "--size", "64", "64", "-o", str(out)]) == 0
    pictures = np.load(out)
    assert pictures.shape == (3, 64, 64, 3) and pictures.dtype == np.uint8
    assert (tmp_path / "goals.png").is_file() and "agent in 3 places" in capsys.readouterr().out
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        changed = np.abs(pictures[a].astype(int) - pictures[b].astype(int)).max(-1) > 30
        # Only the agent moved: a few dozen pixels of a 4-pixel disc at two places, the T the same.
        assert 0 < changed.sum() < 0.02 * changed.size
    blue = (pictures[..., 2].astype(int) - pictures[..., 0]) > 100  # the agent's disc is blue
    assert all(b.any() for b in blue)
    assert main(["--task", "push_region", "--agent-spots", "3", "-o", str(tmp_path / "goals.png")]) == 2
    assert main(["--task", "reach_fixed", "--agent-spots", "3", "-o", str(out)]) == 2
    assert main(["--task", "push_t", "--agent-spots", "-1", "-o", str(out)]) == 2
    assert main(["--agent-spots", "3", "--from-dataset", str(tmp_path), "-o", str(out)]) == 2
    errors = capsys.readouterr().err
    assert "one picture, not a set" in errors and "must be >= 1" in errors and "--agent-spots renders" in errors


def test_the_standin_goal_picture_draws_the_agent_where_asked_and_leaves_the_state():
    from dmo_ros.sims.pusht import PushTConfig, PushTSim

    sim = PushTSim(PushTConfig(seed=0, task="push_t"))
    try:
        before = sim.state()
        left, right = sim.goal_image(agent=np.array([100.0, 256.0])), sim.goal_image(agent=np.array([400.0, 256.0]))
        after = sim.state()
        assert np.allclose(before.agent, after.agent) and np.allclose(before.block, after.block)
        blue = lambda image: (image[..., 2].astype(int) - image[..., 0]) > 100  # noqa: E731
        assert np.nonzero(blue(left))[1].mean() < np.nonzero(blue(right))[1].mean()  # the disc moved right
    finally:
        sim.close()


def test_every_pushing_task_gets_the_same_goal_picture_and_says_where_the_agent_is(tmp_path: Path, capsys) -> None:
    """The goal T is the same for push_t, push_region and push_near, and so is the agent's place (push_t's first
    episode from the seed): a picture made with --task push_region once drew it elsewhere, which the reward pays for
    (DMO on push_region rung 1: 28 % against 60 %)."""
    pictures = {task: standin_goal_image("pusht", seed=0, task=task) for task in ("push_t", "push_region", "push_near")}
    assert np.array_equal(pictures["push_t"], pictures["push_region"])
    assert np.array_equal(pictures["push_t"], pictures["push_near"])
    assert not np.array_equal(pictures["push_t"], standin_goal_image("pusht", seed=1, task="push_region"))
    assert main(["--task", "push_region", "-o", str(tmp_path / "goal.png")]) == 0
    assert "the T on its goal pose, the agent drawn at (" in capsys.readouterr().out


def test_the_agent_option_draws_it_there_and_is_refused_where_it_means_nothing(tmp_path: Path, capsys) -> None:
    blue = lambda image: (image[..., 2].astype(int) - image[..., 0]) > 100  # noqa: E731  the agent's disc
    assert main(["--task", "push_region", "--agent", "64", "448", "-o", str(tmp_path / "g.npy")]) == 0
    assert "the agent drawn at (64, 448) u" in capsys.readouterr().out
    rows, columns = np.nonzero(blue(np.load(tmp_path / "g.npy")))
    assert abs(columns.mean() - 64 * 96 / 512) < 2 and abs(rows.mean() - 448 * 96 / 512) < 2  # x right, y down
    assert main(["--task", "push_t", "--agent", "-200", "-200", "-o", str(tmp_path / "none.npy")]) == 0
    assert "(outside the picture: no agent in it)" in capsys.readouterr().out
    assert not blue(np.load(tmp_path / "none.npy")).any()
    assert main(["--task", "reach_fixed", "--agent", "64", "448", "-o", str(tmp_path / "r.png")]) == 2
    assert main(["--agent", "64", "448", "--agent-spots", "3", "-o", str(tmp_path / "s.npy")]) == 2
    assert main(["--agent", "64", "448", "--from-dataset", str(tmp_path), "-o", str(tmp_path / "d.png")]) == 2
    errors = capsys.readouterr().err
    assert "draws the agent on its target" in errors and "not with --from-dataset or --agent-spots" in errors
