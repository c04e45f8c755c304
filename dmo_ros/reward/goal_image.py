"""Goal images for the goal-conditioned reward: load one (checked and converted), or make the stand-in's.

The reward r(o) = f(o | o_start, o_goal) needs one picture ``o_goal`` of the scene at the goal,
taken by the same camera that recorded the training data.

On the real robot (Push-T): place the T block at the target pose by hand, move the arm to
where it may rest at the end of the task, and save one camera frame, e.g. with ROS 2's
image_view: ``ros2 run image_view image_saver --ros-args -r image:=/camera/image -p
filename_format:=goal.png`` (stop it after the first frame), or take a frame of a converted
dataset recorded in that scene: ``dmo-goal-image --from-dataset FOLDER --sample K -o goal.png``.

On the stand-in, ``dmo-goal-image --robot pusht -o goal.png`` renders the simulator's goal
picture (the block on gym-pusht's goal pose) — what the camera would see at success.

A **goal set** is several pictures of the solved task, for a camera that sees the goal differently from
every place (the Go2's ego camera): ``dmo-goal-image --from-dataset FOLDER --demonstration-ends K -o
goals.npy`` takes the last frames of K demonstrations (intent runs) of a dataset into one (K, H, W, 3)
``.npy`` (and a contact sheet ``goals.png`` beside it to look at); the reward then scores each frame by its
best goal (:class:`~dmo_ros.reward.energy.GoalReward`).

:func:`load_goal_image` reads PNG/JPEG (and any other format OpenCV decodes) or ``.npy`` arrays
and returns (H, W, 3) uint8 RGB at the model's size, or (K, H, W, 3) for a goal set (a 4-D
``.npy``). Fixable differences are converted with a
notice (passed to ``notify``, else logged as a warning): another size (centre crop to the
target aspect, then resize — the dataset converter's rule), grayscale (replicated to RGB),
an alpha channel (dropped), a channels-first array (transposed). Anything that would need a
guess is a :class:`GoalImageError` naming the file, the problem and the fix: 16-bit or float
pixels, a wrong number of dimensions or channels, an empty, missing or undecodable file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from dmo_ros.dataset.images import resize
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_file
from dmo_ros.sims.pusht_tasks import TASKS, make_task

logger = logging.getLogger(__name__)

ROBOTS = ("pusht",)
"""Robots whose stand-in can render a goal picture (Push Cube's reward needs none)."""


class GoalImageError(ValueError):
    """A goal image that cannot be used as it is, with what is wrong and how to fix it."""


def load_goal_image(path: Path | str, size: tuple[int, int] = (64, 64),
                    notify: Callable[[str], None] | None = None) -> np.ndarray:
    """The goal picture at ``path`` as (H, W, 3) uint8 RGB of ``size`` = (H, W), or a goal set (K, H, W, 3) from a
    4-D ``.npy``; see the module doc. Raises :class:`GoalImageError` naming the file, the problem and the fix."""
    path = Path(path)
    notices: list[str] = []
    if path.suffix.lower() == ".npy":
        array = _read_npy(path)
        if array.ndim == 4:  # a goal set: every picture converted like a single one
            if len(array) == 0:
                raise GoalImageError(f"goal image {path}: a goal set of 0 pictures; save at least one")
            pictures = [_fit(_to_rgb8(_channels_last(p, path, notices), path, notices), size, notices)
                        for p in array]
            _tell(path, sorted(set(notices)), notify)
            return np.ascontiguousarray(np.stack(pictures))
        pixels = _channels_last(array, path, notices)
    else:
        pixels = _read_picture(path, notices)
    pixels = _fit(_to_rgb8(pixels, path, notices), size, notices)
    _tell(path, notices, notify)
    return np.ascontiguousarray(pixels)


def _fit(pixels: np.ndarray, size: tuple[int, int], notices: list[str]) -> np.ndarray:
    height, width = int(size[0]), int(size[1])
    if pixels.shape[:2] != (height, width):
        source_h, source_w = pixels.shape[:2]
        how = "upscaled" if source_h < height or source_w < width else "resized"
        pixels = resize(pixels, height, width, "crop")
        notices.append(f"{how} {source_w}x{source_h} to {width}x{height} px (centre crop to the target aspect, "
                       "then resize, as the dataset converter does)")
    return pixels


def _tell(path: Path, notices: list[str], notify: Callable[[str], None] | None) -> None:
    """Each notice to ``notify``, or logged as a warning without one: a caller that prints them would otherwise show
    each one twice (dmo-train-policy printed the resize notice, then Python's last-resort log handler again)."""
    for notice in notices:
        message = f"goal image {path}: {notice}"
        if notify is None:
            logger.warning(message)
        else:
            notify(message)


def demonstration_ends(folder: Path | str, count: int) -> tuple[np.ndarray, list[int]]:
    """The last frames of ``count`` demonstrations (runs of intent on) of a dataset, evenly spread over all of its
    runs: ((K, H, W, 3) uint8, their sample indices). Where the dataset marks milestones (the operator's B button;
    the scripted operators mark success), only the runs that hold one count: a failed demonstration's end is no
    picture of the goal. Raises GoalImageError if the dataset has no such run."""
    from dmo_ros.dataset.format import open_arrays

    arrays = open_arrays(folder)
    intent, episode = np.asarray(arrays["intent"], bool), np.asarray(arrays["episode_index"])
    milestone = np.asarray(arrays["milestone"]) > 0
    new_episode = np.append(True, episode[1:] != episode[:-1])
    first = intent & (new_episode | np.append(True, ~intent[:-1]))
    last = intent & np.append((~intent[1:]) | (episode[1:] != episode[:-1]), True)
    run = np.cumsum(first) * intent  # 1.. per intent run, 0 outside
    ends = np.flatnonzero(last)
    if (milestone & intent).any():
        marked = set(np.unique(run[milestone & intent]).tolist())
        ends = np.array([k for k in ends if run[k] in marked], dtype=np.int64)
    if len(ends) == 0:
        raise GoalImageError(f"{folder}: no demonstration (intent on{', with a milestone' if milestone.any() else ''}) "
                             "to take goal pictures from; record with the intent button, or pick a frame with --sample")
    chosen = ends[np.unique(np.linspace(0, len(ends) - 1, min(count, len(ends))).round().astype(int))]
    return np.stack([np.asarray(arrays["frames"][i]) for i in chosen]), chosen.tolist()


def _read_picture(path: Path, notices: list[str]) -> np.ndarray:
    """Decoded pixels in RGB / RGBA / gray order (as stored: any dtype, 2-D or 3-D)."""
    data = _read_bytes(path)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise GoalImageError(f"goal image {path}: not a readable picture ({len(data)} bytes that OpenCV cannot "
                             "decode); save it as PNG or JPEG, or as a .npy array of (H, W, 3) uint8")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels[:, :, ::-1]  # OpenCV decodes to BGR
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return pixels[:, :, [2, 1, 0, 3]]  # BGRA -> RGBA
    return pixels


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise GoalImageError(f"goal image {path}: no such file; take one camera picture of the scene at the goal "
                             "(see dmo-goal-image --help)")
    if path.is_dir():
        raise GoalImageError(f"goal image {path}: is a folder; pass the picture file itself")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise GoalImageError(f"goal image {path}: cannot be read ({error.strerror or error})") from error
    if not data:
        raise GoalImageError(f"goal image {path}: the file is empty (0 bytes); save the picture again")
    return data


def _read_npy(path: Path) -> np.ndarray:
    _read_bytes(path)  # existence, readability, emptiness
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise GoalImageError(f"goal image {path}: not a NumPy .npy array of pixels ({error}); save one with "
                             "np.save(path, image) where image is (H, W, 3) uint8") from error


def _channels_last(pixels: np.ndarray, path: Path, notices: list[str]) -> np.ndarray:
    """A (C, H, W) array with C in 1, 3, 4 (and a last dimension that is not) becomes (H, W, C)."""
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3, 4) and pixels.shape[2] not in (1, 2, 3, 4):
        notices.append(f"channels-first array {pixels.shape} transposed to channels-last")
        return np.moveaxis(pixels, 0, -1)
    return pixels


def _to_rgb8(pixels: np.ndarray, path: Path, notices: list[str]) -> np.ndarray:
    if pixels.size == 0:
        raise GoalImageError(f"goal image {path}: the image is empty (shape {pixels.shape}); save the picture again")
    if pixels.dtype != np.uint8:
        if pixels.dtype.kind == "f":
            fix = ("float pixels cannot be mapped to the camera's 8-bit colours without a guess; "
                   "convert with (np.clip(image, 0, 1) * 255).round().astype(np.uint8) if it is in [0, 1]")
        elif pixels.dtype.kind in "iu":
            fix = (f"{pixels.dtype.itemsize * 8}-bit pixels (a depth or raw camera image?): the reward model takes "
                   "8-bit RGB frames like the camera topic; save an 8-bit RGB picture (e.g. from /camera/image)")
        else:
            fix = f"{pixels.dtype} pixels are not an image; save an (H, W, 3) uint8 RGB picture"
        raise GoalImageError(f"goal image {path}: {fix}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        notices.append("grayscale converted to RGB (the gray value in all three channels); "
                       "the reward model was trained on colour frames, so prefer a colour picture")
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3:
        raise GoalImageError(f"goal image {path}: {pixels.ndim}-D array of shape {pixels.shape}; one picture is "
                             "(H, W, 3), a goal set (K, H, W, 3) in an .npy")
    channels = pixels.shape[2]
    if channels == 2:
        notices.append("grayscale + alpha: alpha dropped, gray converted to RGB")
        return np.repeat(pixels[:, :, :1], 3, axis=2)
    if channels == 4:
        notices.append("alpha channel dropped (RGBA to RGB; transparency is ignored, colours kept)")
        return pixels[:, :, :3]
    if channels != 3:
        raise GoalImageError(f"goal image {path}: {channels} channels (shape {pixels.shape}); expected RGB, "
                             "RGBA or grayscale")
    return pixels


def save_goal_image(pixels: np.ndarray, path: Path | str) -> Path:
    """Write (H, W, 3) uint8 RGB as PNG/JPEG (by the suffix) or ``.npy``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, pixels)
        return path
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise GoalImageError(f"goal image {path}: unknown suffix; use .png (lossless, recommended), .jpg or .npy")
    if not cv2.imwrite(str(path), np.ascontiguousarray(pixels[:, :, ::-1])):
        raise GoalImageError(f"goal image {path}: could not be written")
    return path


ARENA_U, AGENT_RADIUS_U = 512, 15
"""The Push-T arena's side and the agent disc's radius, arena units (gym-pusht)."""


def standin_goal_image(robot: str = "pusht", seed: int = 0, task: str = "push_t",
                       agent: tuple[float, float] | None = None) -> np.ndarray:
    """The stand-in camera's picture at the goal (native size, (H, W, 3) uint8): for a reach task the scene of its
    first episode from ``seed`` with the agent on its target; for a pushing task (push_t, push_region, push_near)
    the block on its goal pose and the agent drawn at ``agent`` ((x, y), arena units) or, by default, where push_t's
    first episode from ``seed`` puts it — one picture for every pushing task, since they share the goal.

    Why the agent's place is pinned: a temporal-distance reward pays for the agent's place in the picture about as
    much as for the T's last stretch (README, "The goal picture"); on push_region rung 1 DMO scored 28 % with the
    agent where push_region's first episode puts it (top left: the policy parks the arm there) against 60 % with
    push_t's (top right), the same data and settings (docs/ladder.md, "The goal picture's agent").

    Raises ValueError for another robot, or ``agent`` with a reach task (its agent is the goal)."""
    return _standin_goal(robot, seed, task, agent)[0]


def _standin_goal(robot: str, seed: int, task: str,
                  agent: tuple[float, float] | None) -> tuple[np.ndarray, tuple | None]:
    """The picture of :func:`standin_goal_image` and where its agent is drawn (None for a reach task)."""
    if robot != "pusht":
        raise ValueError(f"no goal picture for robot '{robot}'; choose one of {', '.join(ROBOTS)}")
    from dmo_ros.sims.pusht import PushTConfig, PushTSim

    reach = make_task(task).shows_target
    if reach and agent is not None:
        raise ValueError(f"task {task!r} draws the agent on its target; --agent is for the pushing tasks")
    # The pushing tasks share the goal pose, so push_t's first episode draws every one of them (its agent too).
    sim = PushTSim(PushTConfig(seed=seed, task=task if reach else "push_t"))
    try:
        if reach:
            return sim.goal_image(), None
        agent = tuple(float(v) for v in sim.env.agent.position) if agent is None else agent
        return sim.goal_image(agent=np.asarray(agent, dtype=float)), agent
    finally:
        sim.close()


def standin_agent_spots_goal_set(spots: int, seed: int = 0, task: str = "push_t") -> np.ndarray:
    """A goal set (K, H, W, 3) uint8 of a Push-T pushing task: the block on its goal pose, the agent drawn at
    ``spots`` places drawn uniformly over the arena (``seed``), each at least 40 u clear of the goal T.

    Why: one goal picture shows the agent somewhere, and a temporal-distance reward then pays for putting the agent
    there about as much as for the last stretch of the T's way (on push_region the agent alone moves it by ~0.23, the
    T from 50 u to 25 u from the goal by 0.03-0.08, depending on where the agent stands); the best of 16 pictures
    with the agent elsewhere in each (``GoalReward``'s max over a goal set) raises that T rise 1.4-4x, though DMO on
    rung 1 did not score higher with it (docs/ladder.md,
    "push_region's reward, band by band"). On a real robot: the T on its target, one picture per arm
    position. Raises ValueError for a reach task (its agent is the goal) or ``spots`` < 1."""
    from dmo_ros.sims.pusht import ARENA_UNITS, PushTConfig, PushTSim
    from dmo_ros.sims.pusht_tasks import disc_clears_t

    if spots < 1:
        raise ValueError(f"--agent-spots must be >= 1, got {spots}")
    sim = PushTSim(PushTConfig(seed=seed, task=task))
    try:
        if sim.task.shows_target:
            raise ValueError(f"task {task!r} shows the agent on its target: its goal is one picture, not a set")
        rng = np.random.default_rng(seed)
        low, high = sim.config.arena_margin + 20.0, ARENA_UNITS - sim.config.arena_margin - 20.0
        goal = np.asarray(sim.env.goal_pose, dtype=np.float64)
        pictures = []
        while len(pictures) < spots:
            spot = rng.uniform(low, high, 2)
            if disc_clears_t(spot, goal, radius=40.0):
                pictures.append(sim.goal_image(agent=spot))
        return np.stack(pictures)
    finally:
        sim.close()


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-goal-image",
        description="Save the goal picture for the goal-conditioned reward: the stand-in's rendering, or a frame "
                    "of a dataset. On a real robot: place the T at its target pose and save one camera picture "
                    "(e.g. ros2 run image_view image_saver --ros-args -r image:=/camera/image "
                    "-p filename_format:=goal.png), or record it and use --from-dataset.",
    )
    parser.add_argument("-o", "--output", type=output_file, required=True,
                        help="file to write: .png (recommended), .jpg or .npy")
    parser.add_argument("--robot", choices=ROBOTS, default="pusht", help="stand-in to render (default pusht)")
    parser.add_argument("--seed", type=int, default=0, help="stand-in seed (places the arm in the picture: a "
                        "pushing task's agent where push_t's first episode puts it, the same for every pushing task)")
    parser.add_argument("--agent", type=float, nargs=2, metavar=("X", "Y"), default=None,
                        help="a pushing task: draw the agent here (arena units, 0-512; outside, e.g. -200 -200, "
                             "leaves it out of the picture) instead; where it stands in the picture is paid for by "
                             "the reward, so keep it fixed across runs you compare")
    parser.add_argument("--task", choices=TASKS, default="push_t",
                        help="the Push-T task whose goal picture to render (reach: the agent on the episode's target)")
    parser.add_argument("--from-dataset", type=Path, default=None, metavar="FOLDER",
                        help="take the picture from this dataset folder instead of the stand-in")
    parser.add_argument("--sample", type=int, default=-1, help="dataset sample index with --from-dataset (default: "
                        "the last sample)")
    parser.add_argument("--demonstration-ends", type=int, default=0, metavar="K",
                        help="with --from-dataset: a goal set of the last frames of K demonstrations (intent runs), "
                             "evenly spread, into one .npy (and a contact sheet beside it); for an ego camera that "
                             "sees the goal differently from every place (Go2). 0: one picture (default)")
    parser.add_argument("--agent-spots", type=int, default=0, metavar="K",
                        help="a pushing task on the stand-in: a goal set of K pictures, the T on its goal pose and "
                             "the agent in K places, into one .npy (and a contact sheet beside it); the reward is "
                             "then the best of them, so it pays less for where the agent is. 0: one picture "
                             "(default)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                        help="resize to this size (centre crop, then resize); default: keep the native size")
    options = parser.parse_args(argv)
    try:
        if options.agent is not None and (options.from_dataset is not None or options.agent_spots):
            raise GoalImageError("--agent draws the agent into the stand-in's one picture; not with --from-dataset "
                                 "or --agent-spots")
        if options.agent_spots and options.from_dataset is not None:
            raise GoalImageError("--agent-spots renders the stand-in; --from-dataset takes recorded frames (for a goal "
                                 "set from a recording use --demonstration-ends)")
        if options.from_dataset is not None:
            from dmo_ros.dataset.format import DatasetError, open_arrays

            try:
                frames = open_arrays(options.from_dataset)["frames"]
            except DatasetError as error:
                raise GoalImageError(str(error)) from error
            if options.demonstration_ends:
                return _write_goal_set(options)
            if not -len(frames) <= options.sample < len(frames):
                raise GoalImageError(f"--sample {options.sample} outside the dataset's {len(frames)} samples")
            pixels, what = np.array(frames[options.sample]), f"sample {options.sample} of {options.from_dataset}"
        elif options.agent_spots:
            return _write_agent_spots(options)
        else:
            pixels, agent = _standin_goal(options.robot, options.seed, options.task, options.agent)
            what = f"the {options.robot} stand-in's goal ({options.task})"
            if agent is not None:
                what += f": the T on its goal pose, the agent drawn at ({agent[0]:.0f}, {agent[1]:.0f}) u"
                if not all(-AGENT_RADIUS_U < v < ARENA_U + AGENT_RADIUS_U for v in agent):
                    what += " (outside the picture: no agent in it)"
        if options.size is not None:
            pixels = resize(pixels, options.size[0], options.size[1], "crop")
        save_goal_image(pixels, options.output)
    except (GoalImageError, ValueError) as error:
        print(f"dmo-goal-image: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {options.output}: {what}, {pixels.shape[1]}x{pixels.shape[0]} px RGB")
    return 0


def _write_goal_set(options: argparse.Namespace) -> int:
    if options.demonstration_ends < 1 or options.output.suffix.lower() != ".npy":
        raise GoalImageError("--demonstration-ends K needs K >= 1 and an .npy output (a stack of K pictures)")
    pictures, samples = demonstration_ends(options.from_dataset, options.demonstration_ends)
    pictures, sheet_path = _save_goal_set(pictures, options)
    print(f"wrote {options.output}: a goal set of {len(pictures)} demonstration ends of {options.from_dataset} "
          f"(samples {samples[0]}..{samples[-1]}), {pictures.shape[2]}x{pictures.shape[1]} px RGB; "
          f"contact sheet {sheet_path}")
    return 0


def _write_agent_spots(options: argparse.Namespace) -> int:
    if options.output.suffix.lower() != ".npy":
        raise GoalImageError("--agent-spots K needs an .npy output (a stack of K pictures)")
    pictures = standin_agent_spots_goal_set(options.agent_spots, options.seed, options.task)
    pictures, sheet_path = _save_goal_set(pictures, options)
    print(f"wrote {options.output}: a goal set of the {options.robot} stand-in's goal ({options.task}) with the agent "
          f"in {len(pictures)} places, {pictures.shape[2]}x{pictures.shape[1]} px RGB; contact sheet {sheet_path}")
    return 0


def _save_goal_set(pictures: np.ndarray, options: argparse.Namespace) -> tuple[np.ndarray, Path]:
    """Resize (``--size``), save the (K, H, W, 3) stack to ``--output`` and a contact sheet beside it (.png)."""
    if options.size is not None:
        pictures = np.stack([resize(p, options.size[0], options.size[1], "crop") for p in pictures])
    options.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(options.output, pictures)
    columns = min(8, len(pictures))
    rows = -(-len(pictures) // columns)
    sheet = np.full((rows * pictures.shape[1], columns * pictures.shape[2], 3), 255, np.uint8)
    for k, picture in enumerate(pictures):
        r, c = divmod(k, columns)
        height, width = picture.shape[:2]
        sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = picture
    return pictures, save_goal_image(sheet, options.output.with_suffix(".png"))


if __name__ == "__main__":
    sys.exit(main())
