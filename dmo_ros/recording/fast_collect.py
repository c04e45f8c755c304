"""``dmo-collect-fast``: the collect graph's recording, played in-process on a simulated clock.

    dmo-collect-fast --robot pusht --samples 20000 --output bags/fast
    dmo-collect-fast --robot go2 --samples 5000 --seed 3 --demo-probability 1.0

Live collection (``dmo-launch collect``) runs in real time: 20k samples at 5 Hz take 67
minutes. On a stand-in nothing needs the wall clock, so this command steps the same parts
in one process, as fast as the simulation renders, and writes the same recording:

- the stand-in: ``dmo_ros.sims.standin`` — the adapter the stand-in nodes drive (command →
  control step, ground truth → the operator's observation, camera render);
- the operator: ``dmo_ros.teleop.scripted.make_operator`` — the teleop node's scripted operator;
- the messages: ``dmo_ros.recording.collect_messages`` — byte-identical to what the nodes
  publish (checked by a test against the nodes' own builders);
- the recorder: ``dmo_ros.recording.bag_writer.SplitBagSession`` — the recorder node's
  writer, on the simulated clock: the same session folder of split rosbag2 bags (MCAP or
  SQLite3), ``session.yaml`` and ``splits.jsonl``.

Topics, types, rates, image size and the operator's settings are the collect graph's
(``config/graphs/collect.yaml`` arguments, the nodes' parameter defaults). Time: the clock
starts at ``start_time_ns`` (the wall clock when the command starts, by default) and advances
only by simulated time. In each control period T = 1 / ``control_rate_hz`` starting at
t: the teleop ticks at t (action, intent, and reset when the operator asks: the stand-in
resets at once, as it does on receipt); the stand-in steps with that action at
t + ``step_phase_s``; camera frames are taken at t + ``camera_phase_s`` + k / ``image_rate_hz``
(and once before the first tick: the graph starts the stand-in first, so every tick has a frame
and the dataset gets one sample per tick).
Header stamps are these times, and so are the bag's receive times (no transport delay).
The frame-to-action skew is therefore constant, T - ``camera_phase_s`` - (frames per
period - 1) / ``image_rate_hz`` = 50 ms by default, the middle of the live graph's range
(0 to one camera period, its phases being arbitrary). Not simulated: the live graph's
start-up (the teleop's zero commands before the stand-in's first state), lost or late
messages, and stale commands (every command is fresh here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from dmo_ros.graphs.definition import GraphError, load_graph, resolve_arguments
from dmo_ros.interrupt import INTERRUPTED_EXIT_CODE, StopAtBoundary, stop_on_interrupt
from dmo_ros.recording.bag_writer import STORAGES, SplitBagSession, TypeRegistry, new_session_folder
from dmo_ros.recording.collect_messages import ACTION_TYPE, IMAGE_TYPE, INTENT_TYPE, RESET_TYPE, CollectMessages
from dmo_ros.sims.pusht_tasks import TASKS
from dmo_ros.sims.standin import ROBOTS, StandinSimConfig, make_standin_sim
from dmo_ros.teleop.operator import ScriptedOperator, ScriptedOperatorConfig
from dmo_ros.teleop.scripted import DEMO_TIMEOUT_STEPS, make_operator

GRAPH = "collect"
RUN_CONFIG = "config.json"  # what marks a training run folder (dmo_ros.training.checkpoint.CONFIG; no torch here)
# What marks a dataset folder (dmo_ros.dataset.format.META_FILE, FORMAT_NAME): the dataset layer is above this one.
DATASET_META, DATASET_FORMAT = "meta.json", "dmo_ros.dataset"


@dataclass
class FastCollectConfig:
    """One fast recording. Topic and operator settings default to the collect graph's."""

    robot: str = "pusht"
    """Stand-in to play: pusht (Push-T arm) or go2 (Push Cube quadruped)."""
    samples: int = 1200
    """Teleop ticks to record (one dataset sample each): samples / control_rate_hz simulated seconds."""
    output: str = "bags"
    """Folder that receives the session (a new timestamped sub-folder), as the recorder's ``output``."""
    storage: str = "mcap"
    """rosbag2 storage format: mcap or sqlite3."""
    split_duration: float = 1.0
    """Simulated seconds per split bag (the recorder's ``split_duration``)."""
    seed: int = 0
    """Seed of the stand-in and the scripted operator (the graph's ``seed``)."""
    task: str = "push_t"
    """Push-T only: the task whose resets the stand-in plays (:mod:`dmo_ros.sims.pusht_tasks`; the stand-in node's
    ``task``), e.g. reach_fixed for play around the T resting on its goal pose."""
    demo_probability: float = 0.5
    """Share of episodes whose play is followed by a demonstration (intent on)."""
    play_steps_min: int = 20
    """Fewest play steps (at the control rate) at the start of each episode."""
    play_steps_max: int = 60
    """Most play steps at the start of each episode."""
    demo_timeout_steps: int = 0
    """Steps before an unfinished demonstration is abandoned; 0: the robot's default (teleop's)."""
    play_action_noise: float = 0.0
    """Std (m/s, rad/s) of per-step Gaussian noise on the operator's play actions; 0: none
    (:attr:`ScriptedOperatorConfig.play_action_noise`)."""
    play_hold_probability: float = 0.0
    """Per play step, the probability of starting a held command (a random direction kept for a few steps,
    walls included; :attr:`ScriptedOperatorConfig.play_hold_probability`); 0: none."""
    play_slow_probability: float = 0.0
    """Per play step, the probability of starting a slow hold (still or creeping for a few steps;
    :attr:`ScriptedOperatorConfig.play_slow_probability`); 0: none."""
    play_wander_probability: float = 0.0
    """Per play primitive, the probability of walking to a point of the arena (Push Cube: half of them to the goal
    region) instead of pushing (:attr:`ScriptedOperatorConfig.play_wander_probability`); 0: none."""
    lined_up_milestone: float = 0.0
    """Push Cube: the milestone key's value held whenever the robot has the cube straight ahead and the goal beyond
    it, in play and demonstrations (:attr:`ScriptedOperatorConfig.lined_up_milestone`); 0: pressed at success only."""
    demo_settle_steps: int = 0
    """Steps a demonstration goes on pushing after the first success before the success key
    (:attr:`ScriptedOperatorConfig.demo_settle_steps`); 0: the key at the first success."""
    demo_back_off_steps: int = 0
    """Push Cube: steps of backing away from the cube before the success key
    (:attr:`ScriptedOperatorConfig.demo_back_off_steps`); 0: none."""
    camera_topic: str = "/camera/image"
    """Camera topic (sensor_msgs/Image, rgb8)."""
    action_topic: str = ""
    """Action topic; empty: the robot's (/servo_node/delta_twist_cmds for pusht, /cmd_vel for go2)."""
    intent_topic: str = "/intent"
    """dmo_msgs/Intent topic."""
    reset_topic: str = "/reset"
    """The operator's reset events (std_msgs/Header)."""
    width: int = 96
    """Camera image width in pixels (the stand-ins' default)."""
    height: int = 96
    """Camera image height in pixels."""
    image_rate_hz: float = 10.0
    """Camera frames per second (the stand-ins' ``image_rate_hz``); a multiple of control_rate_hz."""
    control_rate_hz: float = 5.0
    """Teleop ticks and stand-in control steps per second (``rate_hz`` / ``control_rate_hz``)."""
    camera_phase_s: float = 0.05
    """Seconds from a teleop tick to the next camera frame; in [0, 1 / image_rate_hz)."""
    step_phase_s: float = 0.1
    """Seconds from a teleop tick to the stand-in's control step that applies its action; in (0, period)."""
    max_episode_steps: int = 0
    """Stand-in: reset after this many control steps; 0: only when the operator resets."""
    camera_frame_id: str = "camera"
    """frame_id of the images (the stand-ins' ``frame_id``)."""
    action_frame_id: str = "world"
    """frame_id of TwistStamped actions (the teleop's ``frame_id``)."""
    start_time_ns: int = 0
    """Simulated clock at the first tick, ns since the Unix epoch; 0: the wall clock at the start."""

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"unknown robot '{self.robot}'; choose one of {', '.join(ROBOTS)}")
        if self.samples <= 0:
            raise ValueError(f"samples must be positive, got {self.samples}")
        if self.task not in TASKS or (self.robot != "pusht" and self.task != "push_t"):
            raise ValueError(f"task {self.task!r}: the pusht stand-in plays one of {', '.join(TASKS)}; the go2 "
                             "stand-in plays Push Cube only (leave task at push_t)")
        if self.storage not in STORAGES:
            raise ValueError(f"unknown storage '{self.storage}'; choose one of {', '.join(STORAGES)}")
        if self.split_duration <= 0:
            raise ValueError("split_duration must be positive (splits bound what a crash loses)")
        if self.control_rate_hz <= 0 or self.image_rate_hz <= 0:
            raise ValueError("control_rate_hz and image_rate_hz must be positive")
        if abs(self.frames_per_period - self.image_rate_hz / self.control_rate_hz) > 1e-9 or self.frames_per_period < 1:
            raise ValueError(f"image_rate_hz ({self.image_rate_hz:g}) must be a whole multiple of "
                             f"control_rate_hz ({self.control_rate_hz:g})")
        if not 0 <= self.camera_phase_s < 1 / self.image_rate_hz:
            raise ValueError(f"camera_phase_s must be in [0, {1 / self.image_rate_hz:g}) s")
        if not 0 < self.step_phase_s < 1 / self.control_rate_hz:
            raise ValueError(f"step_phase_s must be in (0, {1 / self.control_rate_hz:g}) s")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if self.start_time_ns < 0:
            raise ValueError("start_time_ns must be >= 0")
        if not self.action_topic:
            self.action_topic = collect_graph_defaults(self.robot)["action_topic"]

    @property
    def frames_per_period(self) -> int:
        return round(self.image_rate_hz / self.control_rate_hz)


def collect_graph_defaults(robot: str) -> dict:
    """The collect graph's argument values for ``robot`` (topics, operator settings, storage, splits)."""
    return resolve_arguments(load_graph(GRAPH), {"robot": robot})


@dataclass
class FastCollectResult:
    session: Path
    """The session folder written."""
    samples: int
    """Teleop ticks recorded (action and intent messages each)."""
    images: int
    """Camera images recorded."""
    resets: int
    """Reset events recorded."""
    episodes: int
    """Episodes the operator started."""
    demos: int
    """Demonstrations (intent on) the operator made."""
    demo_successes: int
    """Demonstrations that reached the goal."""
    splits: int
    """Split bags in the session."""
    bytes: int
    """Serialized message bytes written."""
    simulated_s: float
    """Simulated seconds recorded."""
    wall_s: float
    """Wall-clock seconds the recording took."""

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else float("inf")


class CollectionInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM turned into it) stopped a recording; the session was closed with what it holds."""

    def __init__(self, session: Path, samples: int) -> None:
        super().__init__(f"{samples} samples recorded in {session}, closed")
        self.session = session
        self.samples = samples


def session_operator(config: FastCollectConfig) -> ScriptedOperator:
    """The scripted operator a session of ``config`` records (its play, demonstration and key settings).

    Raises:
        ValueError: a setting the operator refuses (see :func:`~dmo_ros.teleop.scripted.make_operator`).
    """
    return make_operator(config.robot, ScriptedOperatorConfig(
        seed=config.seed, play_steps=(config.play_steps_min, config.play_steps_max),
        demo_probability=config.demo_probability,
        demo_timeout_steps=config.demo_timeout_steps or DEMO_TIMEOUT_STEPS[config.robot],
        play_action_noise=config.play_action_noise, play_hold_probability=config.play_hold_probability,
        play_slow_probability=config.play_slow_probability, play_wander_probability=config.play_wander_probability,
        lined_up_milestone=config.lined_up_milestone, demo_settle_steps=config.demo_settle_steps,
        demo_back_off_steps=config.demo_back_off_steps,
    ), task=config.task)


def collect_fast(config: FastCollectConfig, progress: bool = False) -> FastCollectResult:
    """Record ``config.samples`` teleop ticks of the stand-in and the scripted operator (see module doc).

    Raises ``CollectionInterrupted`` on ``KeyboardInterrupt``, after closing the session (``closed: true``, no
    ``.partial/`` left) with the samples recorded so far; ``ValueError`` for an output folder it cannot write."""
    started = time.monotonic()
    start_ns = config.start_time_ns or time.time_ns()
    period_ns = round(1e9 / config.control_rate_hz)
    image_period_ns = round(1e9 / config.image_rate_hz)
    camera_offsets = [round(config.camera_phase_s * 1e9) + j * image_period_ns
                      for j in range(config.frames_per_period)]
    # One control period's events, by offset from its tick (a step before a frame at the same time).
    events = sorted([(0, 0, "tick"), (round(config.step_phase_s * 1e9), 1, "step")]
                    + [(offset, 2, "camera") for offset in camera_offsets])
    now_ns = start_ns  # the simulated clock

    registry = TypeRegistry()
    messages = CollectMessages(registry)
    session = _new_session(config, registry, start_ns, lambda: now_ns * 1e-9)
    standin = None
    interrupted = False
    try:
        topics = {config.camera_topic: IMAGE_TYPE, config.action_topic: ACTION_TYPE[config.robot],
                  config.intent_topic: INTENT_TYPE, config.reset_topic: RESET_TYPE}
        for topic, msgtype in topics.items():
            session.add_topic(topic, msgtype)

        standin = make_standin_sim(StandinSimConfig(
            robot=config.robot, seed=config.seed, width=config.width, height=config.height,
            control_rate_hz=config.control_rate_hz, max_episode_steps=config.max_episode_steps, task=config.task,
        ))
        operator = session_operator(config)
        action_size = operator.action_size
        command_action = np.zeros(action_size)  # the stand-in's latest command
        frame: np.ndarray | None = None  # the camera image of the current state (rendered on demand)
        images = resets = 0

        def write(topic: str, stamp_ns: int, data: bytes) -> None:
            nonlocal now_ns
            now_ns = stamp_ns
            session.write(topic, stamp_ns, data)  # receive time = stamp (no transport delay)

        def take_picture(stamp_ns: int) -> None:
            nonlocal frame, images
            if frame is None:
                frame = standin.render()
            write(config.camera_topic, stamp_ns, messages.image(frame, stamp_ns, config.camera_frame_id))
            images += 1

        # A signal is held to the next tick: raised inside a write it could leave a split half-made in .partial/.
        with StopAtBoundary() as stop:
            # The stand-in is up before the teleop (the graph starts it first): one camera frame
            # precedes the first tick, so the first action has a frame too.
            take_picture(start_ns - period_ns + camera_offsets[-1])
            for k in range(config.samples):
                stop.at_boundary()  # a stop between ticks: no split left half-made
                tick_ns = start_ns + k * period_ns
                for offset, _order, kind in events:
                    stamp_ns = tick_ns + offset
                    if kind == "tick":
                        command = operator.act(standin.observation())
                        command_action = np.asarray(command.action, dtype=float)
                        write(config.action_topic, stamp_ns,
                              messages.action(config.robot, command_action, stamp_ns, config.action_frame_id))
                        write(config.intent_topic, stamp_ns,
                              messages.intent(command.intent, command.milestone, stamp_ns))
                        if command.reset:
                            write(config.reset_topic, stamp_ns, messages.reset(stamp_ns))
                            resets += 1
                            standin.reset()  # the stand-in resets on receipt and forgets the command
                            command_action = np.zeros(action_size)
                            frame = None
                    elif kind == "step":
                        now_ns = stamp_ns
                        standin.step(command_action)
                        frame = None
                        if standin.done():
                            standin.reset()
                            command_action = np.zeros(action_size)
                    else:
                        take_picture(stamp_ns)
                if progress and (k + 1) % 1000 == 0:
                    elapsed = time.monotonic() - started
                    print(f"  {k + 1}/{config.samples} samples, {elapsed:.0f} s ({(k + 1) / elapsed:.0f} samples/s)",
                          flush=True)
        now_ns = start_ns + config.samples * period_ns
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through stop_on_interrupt: keep what is recorded
        interrupted = True
    finally:
        session.close()  # first: what is recorded must be closed even if the stand-in's close fails
        if standin is not None:
            standin.close()
    if interrupted:
        # counted from the session, not the loop: the signal may land between a write and the count's update
        raise CollectionInterrupted(session.folder, session.total_counts().get(config.intent_topic, 0))
    stats = operator.stats
    return FastCollectResult(
        session=session.folder, samples=config.samples, images=images, resets=resets,
        episodes=stats.episodes, demos=stats.demos, demo_successes=stats.demo_successes,
        splits=len(session.splits), bytes=session.bytes_written(),
        simulated_s=config.samples / config.control_rate_hz, wall_s=time.monotonic() - started,
    )


def _json_mapping(path: Path) -> dict:
    """The JSON object in ``path``; {} when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def output_folder_problem(output: Path) -> str:
    """Why ``output`` must not receive a recording session, in one line; '' when it may. A dataset folder (its
    ``meta.json``) or a training run folder (its ``config.json``), or a folder inside one, is refused: the session
    would be mixed into it, and a dataset folder is not where ``dmo-convert`` looks for recordings."""
    for folder in (output, *output.parents):
        inside = "" if folder == output else f"inside {folder}, "
        if _json_mapping(folder / DATASET_META).get("format") == DATASET_FORMAT:
            return (f"output folder '{output}' is {inside}a dataset (it holds {DATASET_META}); record into a "
                    "folder of recordings, e.g. bags/fast, and convert it with dmo-convert")
        if "kind" in _json_mapping(folder / RUN_CONFIG):
            return (f"output folder '{output}' is {inside}a training run folder (it holds {RUN_CONFIG}); "
                    "record into a folder of recordings, e.g. bags/fast")
    return ""


def _new_session(config: FastCollectConfig, registry: TypeRegistry, start_ns: int,
                 clock: Callable[[], float]) -> SplitBagSession:
    """The recorder's session writer on the simulated clock, its folder named after the simulated start."""
    output = Path(config.output).expanduser()
    problem = output_folder_problem(output)
    if problem:
        raise ValueError(problem)
    try:
        folder = new_session_folder(output, datetime.fromtimestamp(start_ns / 1e9))
        return SplitBagSession(output, storage=config.storage, split_duration=config.split_duration,
                               registry=registry, clock=clock, session_folder=folder,
                               collection={"tool": "dmo-collect-fast", **asdict(config)})
    except OSError as error:
        raise ValueError(f"cannot write to output folder '{config.output}': {error.strerror or error}") from None


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-collect-fast", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Record the collect graph's bags (stand-in + scripted operator + recorder) in-process on a "
                    "simulated clock, faster than real time. Defaults come from config/graphs/collect.yaml.",
    )
    parser.add_argument("--robot", choices=ROBOTS, default="pusht", help="stand-in to play (default pusht)")
    parser.add_argument("--samples", type=int, required=True, help="teleop ticks (dataset samples) to record")
    parser.add_argument("--output", "-o", help="folder for the session (default: the graph's output)")
    parser.add_argument("--seed", type=int, help="seed of the stand-in and the operator (default: the graph's)")
    parser.add_argument("--demo-probability", type=float, help="share of episodes with a demonstration")
    parser.add_argument("--play-steps-min", type=int, help="fewest play steps per episode")
    parser.add_argument("--play-steps-max", type=int, help="most play steps per episode")
    parser.add_argument("--play-action-noise", type=float,
                        help="std (m/s, rad/s) of per-step Gaussian noise on play actions (default: the graph's)")
    parser.add_argument("--play-hold-probability", type=float,
                        help="per play step, probability of holding a random direction for a few steps, walls "
                             "included (default: the graph's)")
    parser.add_argument("--play-slow-probability", type=float,
                        help="per play step, probability of standing still or creeping for a few steps (default: "
                             "the graph's)")
    parser.add_argument("--play-wander-probability", type=float,
                        help="per play primitive, probability of walking to a point of the arena (Push Cube: half of "
                             "them to the goal region) instead of pushing (default: the graph's)")
    parser.add_argument("--lined-up-milestone", type=float,
                        help="Push Cube: the milestone key's value (in [0, 1)) held whenever the robot has the cube "
                             "straight ahead and the goal beyond it; 0: pressed at success only (default: the graph's)")
    parser.add_argument("--demo-settle-steps", type=int,
                        help="steps a demonstration goes on pushing after the first success before the success key "
                             "(default: the graph's)")
    parser.add_argument("--demo-back-off-steps", type=int,
                        help="Push Cube: steps of backing away from the cube before the success key, so the "
                             "demonstration ends with the cube on the disc in view (default: the graph's)")
    parser.add_argument("--storage", choices=sorted(STORAGES), help="rosbag2 storage (default: the graph's)")
    parser.add_argument("--split-duration", type=float, help="simulated seconds per split bag")
    parser.add_argument("--max-episode-steps", type=int, default=0, help="stand-in step limit per episode; 0: none")
    parser.add_argument("--task", choices=TASKS, default="push_t",
                        help="Push-T: the task whose resets the stand-in plays (default push_t)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    options = parser.parse_args(argv)
    try:
        graph = collect_graph_defaults(options.robot)
        chosen = {"output": options.output, "seed": options.seed, "demo_probability": options.demo_probability,
                  "play_steps_min": options.play_steps_min, "play_steps_max": options.play_steps_max,
                  "play_action_noise": options.play_action_noise,
                  "play_hold_probability": options.play_hold_probability,
                  "play_slow_probability": options.play_slow_probability,
                  "play_wander_probability": options.play_wander_probability,
                  "lined_up_milestone": options.lined_up_milestone,
                  "demo_settle_steps": options.demo_settle_steps,
                  "demo_back_off_steps": options.demo_back_off_steps,
                  "storage": options.storage, "split_duration": options.split_duration}
        values = {name: graph[name] if value is None else value for name, value in chosen.items()}
        config = FastCollectConfig(
            robot=options.robot, samples=options.samples, max_episode_steps=options.max_episode_steps,
            task=options.task,
            camera_topic=graph["camera_topic"], action_topic=graph["action_topic"],
            intent_topic=graph["intent_topic"], reset_topic=graph["reset_topic"], **values,
        )
        session_operator(config)  # its settings checked up front
    except (ValueError, GraphError) as error:
        parser.error(str(error))
    problem = output_folder_problem(Path(config.output).expanduser())
    if problem:  # before the "recording" line: one line says why nothing is recorded
        print(f"dmo-collect-fast: error: {problem}", file=sys.stderr)
        return 2
    print(f"recording {config.samples} samples ({config.samples / config.control_rate_hz:g} simulated s) of "
          f"{config.robot} into {config.output}", flush=True)
    try:
        result = collect_fast(config, progress=not options.quiet)
    except ValueError as error:
        print(f"dmo-collect-fast: error: {error}", file=sys.stderr)
        return 2
    except CollectionInterrupted as stop:  # stop_on_interrupt turns 130 into 143 when SIGTERM stopped it
        print(f"dmo-collect-fast: interrupted: {stop}", file=sys.stderr, flush=True)
        return INTERRUPTED_EXIT_CODE
    print(f"{result.session}: {result.samples} samples, {result.images} images, {result.resets} resets, "
          f"{result.episodes} episodes ({result.demo_successes}/{result.demos} demonstrations succeeded); "
          f"{result.splits} splits, {result.bytes / 1e6:.1f} MB")
    print(f"{result.simulated_s:g} simulated s in {result.wall_s:.1f} s: {result.samples_per_s:.0f} samples/s, "
          f"{result.simulated_s / result.wall_s:.0f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
