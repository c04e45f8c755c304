"""dream: the world model's imagined rollouts as ROS topics for RViz (and Foxglove), with hallucination flags.

A thin node over :class:`dmo_ros.dream.rollouts.Dreamer` (rollouts, action sources and the flag live there,
tested without ROS):

- loads the world model ``world_model`` (safetensors + JSON: no code runs), optionally the reward model
  (``reward`` + ``goal`` picture) and a policy run (``policy``, with its critic for the value);
- starts ``rollouts`` rollouts from a real window: a dataset's (``start_source: dataset``; ``episode``,
  ``offset``; the next ones follow at one horizon's stride) or the last frames received on ``camera/image``
  (``start_source: camera``);
- takes actions from ``action_source``: ``policy``, ``recorded`` (open-loop replay of the dataset's actions,
  the real frames published beside the imagined ones) or ``teleop`` (the robot profile's action message on
  ``action``: drive the imagined robot with the teleop node's Joy mapping);
- every 1 / ``rate_hz`` s imagines one step of every rollout and publishes, all with one header stamp:
  ``dream/imagined`` (sensor_msgs/Image rgb8, the rollouts tiled left to right, upscaled ``scale`` times),
  ``dream/real`` (the same for the recorded frames, when replaying a recording), ``dream/step``
  (dmo_msgs/ImaginedStep per rollout: frame, action, reward, value, step, rollout, spread, off_data) and
  ``dream/markers`` (visualization_msgs/MarkerArray: a caption and a reward / value / spread strip plot per
  rollout, in frame ``frame_id``);
- services ``dream/restart`` (std_srvs/Trigger: the same start from step 0) and ``dream/pick_start``
  (Trigger: the next episode's start, or the latest camera frames); setting the parameters ``episode`` /
  ``offset`` at run time jumps to that window; with ``loop`` a finished rollout moves on to the next start;
- ``foxglove: true`` serves the same streams over a Foxglove websocket on ``foxglove_host`` (127.0.0.1) :
  ``foxglove_port``; ``mcap`` names an MCAP file they are also written to (for the Foxglove app).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from geometry_msgs.msg import Point
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from dmo_msgs.msg import ImaginedStep
from dmo_ros.dataset.images import ASPECTS, COMPRESSED_TYPE, IMAGE_TYPE, ImageError, camera_frame
from dmo_ros.dataset.robot_profile import ProfileError, load_robot_profile
from dmo_ros.dream.rollouts import (
    SPREAD_SUMMARIES,
    DreamConfig,
    Dreamer,
    DreamStart,
    DreamStep,
    ExternalActions,
    PolicyActions,
    RecordedActions,
    StartCatalog,
    load_policy_value,
)
from dmo_ros.dream.views import StripPlot, tile
from dmo_ros.nodes.image_conversion import rgb8_image
from dmo_ros.nodes.policy import message_class
from dmo_ros.nodes.template import QOS_PROFILES, DmoNode, param, qos_profile, run_node

ACTION_SOURCES = ("policy", "recorded", "teleop")
START_SOURCES = ("dataset", "camera")
CAMERA_FORMATS = {"raw": (Image, IMAGE_TYPE), "compressed": (CompressedImage, COMPRESSED_TYPE)}
TOPICS = {"imagined": "dream/imagined", "real": "dream/real", "step": "dream/step", "markers": "dream/markers"}
"""What the node publishes (relative names: a namespace or remapping moves them)."""
SERIES = {"reward": (0.1, 0.8, 0.1), "value": (0.2, 0.4, 1.0), "spread": (0.9, 0.2, 0.1)}
"""Strip-plot series and their colours."""


@dataclass
class DreamNodeParameters:
    world_model: str = param("", "World-model run folder of dmo-train-world-model (DIAMOND) or of dmo-train-dynamics "
                                 "(DreamerV4-style, rewarded by its reward token) (safetensors + JSON).")
    checkpoint_step: str = param("last", "Checkpoint of the world-model run: last or step_NNNNNNNN.")
    policy: str = param("", "Policy run folder of dmo-train-policy (action_source policy; its critic gives the value).")
    reward: str = param("", "Reward run folder of dmo-train-reward; empty: no reward (NaN).")
    goal: str = param("", "Goal picture for the reward (PNG/JPEG/.npy, see dmo-goal-image); needed with reward.")
    dataset: str = param("", "Dataset folder whose real windows start the rollouts (start_source dataset).")
    split: str = param("val", "Dataset split of the start windows: val, train or all (val falls back to all).")
    start_source: str = param("dataset", f"Where rollouts start: {', '.join(START_SOURCES)} (the last frames "
                                         "received on camera/image).")
    action_source: str = param("policy", f"Where actions come from: {', '.join(ACTION_SOURCES)}.")
    episode: int = param(-1, "Dataset episode of the first start; -1: the first episode with a window.")
    offset: int = param(0, "Samples into the episode where the first start window begins.")
    horizon: int = param(32, "Imagined steps per rollout.")
    rollouts: int = param(1, "Rollouts imagined side by side (dataset starts one horizon apart).")
    rate_hz: float = param(5.0, "Imagined steps published per second (at most: a slow model publishes slower).")
    loop: bool = param(True, "When the rollouts end, start the next ones (the next episode, or fresh camera frames).")
    scale: int = param(4, "Upscaling of the published frames for viewing (nearest neighbour).")
    seeds: int = param(4, "K: samples of every next frame from different noise for the hallucination flag; 1: off.")
    threshold: float = param(0.0, "Spread above which a step is off data (marked red); 0: never.")
    end_off_data: bool = param(False, "End a rollout at its first off-data step (else only mark it).")
    summary: str = param("mean", f"Summary of the per-pixel variance: {', '.join(SPREAD_SUMMARIES)}.")
    sampling_steps: int = param(0, "Denoising steps per imagined frame; 0: the world model's own (sampler_steps).")
    seed: int = param(0, "Seed of the sampler's noise.")
    bf16: bool = param(False, "Sample the DIAMOND world model under bfloat16 autocast (fast on a CPU with AMX, "
                              "slow without bfloat16 units).")
    robot: str = param("pusht", "Robot profile (config/robots/ROBOT.yaml): the teleop action's message and fields.")
    teleop_timeout: float = param(0.5, "Seconds after which a teleop action counts as released (zero).")
    camera_format: str = param("raw", f"Camera message type (start_source camera): {', '.join(CAMERA_FORMATS)}.")
    aspect: str = param("crop", f"How camera frames are fitted to the model ({', '.join(ASPECTS)}).")
    image_qos: str = param("sensor_data", f"QoS of the image topics, in and out: {', '.join(QOS_PROFILES)}.")
    frame_id: str = param("dream", "frame_id of the images and markers (RViz's fixed frame in config/dream.rviz).")
    foxglove: bool = param(False, "Serve the streams over a Foxglove websocket (foxglove-sdk).")
    foxglove_host: str = param("127.0.0.1", "Address the Foxglove server binds (loopback by default).")
    foxglove_port: int = param(8765, "Port of the Foxglove server (0: any free port, logged).")
    mcap: str = param("", "MCAP file the streams are also written to (opens in the Foxglove app); empty: none.")
    device: str = param("cpu", "Torch device of the models: cpu or cuda[:N].")
    torch_threads: int = param(1, "Torch intra-op threads.")


class DreamNode(DmoNode):
    def __init__(self) -> None:
        super().__init__("dream")
        self.parameters = p = self.declare(DreamNodeParameters)
        self._check(p)
        torch.set_num_threads(p.torch_threads)
        from dmo_ros.training import CheckpointError
        from dmo_ros.world_model.denoiser import load_world_model
        from dmo_ros.world_model_v4.model import is_world_model_v4, load_world_model_v4

        # A dmo-train-dynamics run (DreamerV4-style, reward token) or a dmo-train-world-model run (DIAMOND).
        loader = load_world_model_v4 if is_world_model_v4(p.world_model) else load_world_model
        try:
            world_model = loader(Path(p.world_model), p.device, p.checkpoint_step)
        except (CheckpointError, FileNotFoundError, ValueError) as error:
            raise ValueError(f"world model {p.world_model}: {error}") from None
        self.model_config = cfg = world_model.config
        reward = self._reward(p, cfg.image_size) if p.reward else None
        config = DreamConfig(horizon=p.horizon, seeds=p.seeds, threshold=p.threshold, end_off_data=p.end_off_data,
                             summary=p.summary, sampling_steps=p.sampling_steps, seed=p.seed,
                             bf16=p.bf16)
        self.dreamer = Dreamer(world_model, config, reward=reward, device=p.device)
        self.catalog = None
        if p.start_source == "dataset":
            try:
                self.catalog = StartCatalog(p.dataset, self.dreamer.context, p.horizon, p.split)
                self.index = self.catalog.find(p.episode if p.episode >= 0 else self.catalog.episodes[0], p.offset)
            except (ValueError, FileNotFoundError) as error:  # DatasetError is a ValueError
                raise ValueError(f"dataset {p.dataset}: {error}") from None
        self.source = self._action_source(p, cfg)
        self.plots = [StripPlot(length=p.horizon) for _ in range(p.rollouts)]
        self.live: deque = deque(maxlen=self.dreamer.context)
        self.live_actions: deque = deque(maxlen=self.dreamer.context)
        self.last_live = -math.inf
        self.frames_published = 0

        image_qos = qos_profile(p.image_qos)
        self.imagined_pub = self.create_publisher(Image, TOPICS["imagined"], image_qos)
        self.real_pub = self.create_publisher(Image, TOPICS["real"], image_qos)
        self.step_pub = self.create_publisher(ImaginedStep, TOPICS["step"], qos_profile("reliable"))
        self.marker_pub = self.create_publisher(MarkerArray, TOPICS["markers"], qos_profile("reliable"))
        self.create_service(Trigger, "dream/restart", self.on_restart)
        self.create_service(Trigger, "dream/pick_start", self.on_pick_start)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        if p.start_source == "camera":
            camera_type, self.camera_msgtype = CAMERA_FORMATS[p.camera_format]
            self.create_subscription(camera_type, "camera/image", self.on_camera, image_qos)
        self.foxglove = None
        if p.foxglove or p.mcap:
            from dmo_ros.dream.foxglove_view import FoxgloveView

            try:
                self.foxglove = FoxgloveView(p.foxglove_port if p.foxglove else None, p.foxglove_host,
                                             p.mcap or None, p.frame_id)
            except (OSError, RuntimeError) as error:
                raise ValueError(f"cannot start the Foxglove view: {error}") from None
        if self.catalog is not None:
            self.begin(self.catalog.start(self.index, p.rollouts))
        self.create_timer(1.0 / p.rate_hz, self.on_tick)
        where = (f"dataset {p.dataset} ({self.catalog.split}, {len(self.catalog)} start windows)"
                 if self.catalog is not None else "the camera's last frames")
        server = f"; Foxglove on ws://{p.foxglove_host}:{self.foxglove.port}" if self.foxglove and p.foxglove else ""
        self.get_logger().info(
            f"dreaming {p.rollouts} rollout(s) of {p.horizon} steps with {self.source.name} actions from {where} at "
            f"{p.rate_hz} Hz; {p.seeds} seed(s) per frame{f', threshold {p.threshold}' if p.threshold else ''}; "
            f"topics {', '.join(TOPICS.values())}{server}{f'; writing {p.mcap}' if p.mcap else ''}")

    # -- set-up ----------------------------------------------------------------------------------------------

    @staticmethod
    def _check(p: DreamNodeParameters) -> None:
        choices = {"action_source": ACTION_SOURCES, "start_source": START_SOURCES, "summary": SPREAD_SUMMARIES,
                   "camera_format": tuple(CAMERA_FORMATS), "aspect": ASPECTS, "split": ("val", "train", "all")}
        for name, allowed in choices.items():
            if getattr(p, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(p, name)!r}")
        if not p.world_model:
            raise ValueError("parameter 'world_model' is required: a world-model run folder")
        if p.start_source == "dataset" and not p.dataset:
            raise ValueError("start_source dataset needs the parameter 'dataset'")
        if p.action_source == "recorded" and p.start_source != "dataset":
            raise ValueError("action_source recorded replays a dataset's actions: it needs start_source dataset")
        if p.action_source == "policy" and not p.policy:
            raise ValueError("action_source policy needs the parameter 'policy' (a policy run folder)")
        if p.reward and not p.goal:
            from dmo_ros.reward.energy import needs_goal
            from dmo_ros.training import CheckpointError

            try:
                goal_needed = needs_goal(p.reward)
            except CheckpointError as error:
                raise ValueError(f"reward {p.reward}: {error}") from None
            if goal_needed:
                raise ValueError("the reward needs a goal picture: set the parameter 'goal' (an intent reward, "
                                 "dmo-train-reward --objective intent, needs none)")
        for name in ("horizon", "rollouts", "scale", "seeds", "torch_threads"):
            if getattr(p, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(p, name)}")
        if p.rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {p.rate_hz}")
        qos_profile(p.image_qos)

    def _reward(self, p: DreamNodeParameters, image_size: int) -> Any:
        from dmo_ros.reward.energy import frame_reward, load_reward_model
        from dmo_ros.reward.goal_image import load_goal_image
        from dmo_ros.training import CheckpointError

        try:
            model = load_reward_model(p.reward, p.device)
            goal = load_goal_image(p.goal, size=(image_size, image_size)) if p.goal else None
            return frame_reward(model, goal)
        except (CheckpointError, FileNotFoundError, ValueError) as error:
            raise ValueError(f"reward {p.reward} / goal {p.goal}: {error}") from None

    def _action_source(self, p: DreamNodeParameters, cfg: Any) -> Any:
        if p.action_source == "recorded":
            return RecordedActions()
        if p.action_source == "policy":
            from dmo_ros.policy.api import PolicyError, load_policy_run

            try:
                run = load_policy_run(Path(p.policy), p.device)
                value = load_policy_value(p.policy, p.device)
            except (PolicyError, FileNotFoundError) as error:
                raise ValueError(str(error)) from None
            if tuple(run.policy.image_size) != (cfg.image_size, cfg.image_size):
                raise ValueError(f"the policy takes {run.policy.image_size} frames, the world model "
                                 f"{cfg.image_size}x{cfg.image_size}")
            return PolicyActions(run.policy, value)
        try:
            profile = load_robot_profile(p.robot)
        except ProfileError as error:
            raise ValueError(str(error)) from None
        if len(profile.action.fields) != cfg.action_size:
            raise ValueError(f"robot {p.robot} has {len(profile.action.fields)} action components, the world model "
                             f"{cfg.action_size}")
        self.action_spec = profile.action
        source = ExternalActions(cfg.action_size, p.teleop_timeout)
        self.create_subscription(message_class(profile.action.message), "action", self.on_action,
                                 qos_profile("reliable"))
        return source

    # -- inputs ----------------------------------------------------------------------------------------------

    def on_action(self, message: Any) -> None:
        try:
            self.source.set(self.action_spec.vector(message))
        except ValueError as error:
            self.get_logger().error(f"teleop action refused: {error}")

    def on_camera(self, message: Any) -> None:
        """Keep the last L frames at the model's rate (about one per 1 / rate_hz of the data)."""
        now = time.monotonic()
        if now - self.last_live < 0.9 / self.parameters.rate_hz:
            return
        size = self.model_config.image_size
        try:
            frame, _ = camera_frame(message, self.camera_msgtype, size, size, self.parameters.aspect)
        except ImageError as error:
            self.get_logger().error(f"camera image refused: {error}")
            return
        self.last_live = now
        self.live.append(frame)
        # The action in force while the frame was taken: the teleop's, else unknown (zero).
        action = self.source.current() if isinstance(self.source, ExternalActions) else None
        self.live_actions.append(np.zeros(self.model_config.action_size) if action is None else action.numpy())

    # -- rollouts --------------------------------------------------------------------------------------------

    def begin(self, start: DreamStart) -> None:
        self.report_rate()
        self.dreamer.start(start, self.source)
        self.began = time.monotonic()
        for plot in self.plots:
            plot.clear()
        self.get_logger().info(f"rollouts from {'; '.join(start.labels)}")

    def report_rate(self) -> None:
        """Log how fast the last rollouts were imagined (a model slower than rate_hz publishes slower)."""
        steps, began = self.dreamer.steps, getattr(self, "began", None)
        if began is None or steps < 2:
            return
        achieved = steps / max(time.monotonic() - began, 1e-9)
        slow = achieved < 0.9 * self.parameters.rate_hz
        (self.get_logger().warn if slow else self.get_logger().info)(
            f"{steps} steps at {achieved:.1f} Hz (asked {self.parameters.rate_hz} Hz)"
            + ("; fewer seeds or rollouts, or a GPU (device), would keep up" if slow else ""))

    def live_start(self) -> DreamStart | None:
        if len(self.live) < self.dreamer.context:
            return None
        frames = np.stack(self.live)
        actions = np.stack(list(self.live_actions)[:-1])
        single = DreamStart.from_live(frames, actions)
        count = self.parameters.rollouts  # every rollout starts from the same frames (different noise)
        return DreamStart(frames=single.frames.expand(count, -1, -1, -1, -1).contiguous(),
                          actions=single.actions.expand(count, -1, -1).contiguous(), labels=["live"] * count)

    def next_start(self) -> DreamStart | None:
        if self.catalog is not None:
            self.index = self.catalog.next_episode(self.index)
            return self.catalog.start(self.index, self.parameters.rollouts)
        return self.live_start()

    def on_tick(self) -> None:
        if self.dreamer.finished:
            if self.dreamer.start_windows is not None and not self.parameters.loop:
                return
            start = self.next_start() if self.dreamer.start_windows is not None else self.live_start()
            if start is None:
                return  # no camera frames yet
            self.begin(start)
        try:
            step = self.dreamer.step()
        except (ValueError, RuntimeError) as error:  # e.g. a policy that cannot act on the frame
            self.get_logger().error(f"imagining a step failed: {error}")
            self.finish(1)
            return
        self.publish(step)

    # -- outputs ---------------------------------------------------------------------------------------------

    def publish(self, step: DreamStep) -> None:
        p = self.parameters
        now = self.get_clock().now()
        stamp = now.to_msg()
        stamp_ns = now.nanoseconds
        imagined = tile(step.imagined, p.scale)
        self.imagined_pub.publish(rgb8_image(imagined, stamp, p.frame_id))
        real = tile(step.real, p.scale) if step.real is not None else None
        if real is not None:
            self.real_pub.publish(rgb8_image(real, stamp, p.frame_id))
        labels = self.dreamer.start_windows.labels
        markers = MarkerArray()
        markers.markers.append(Marker(action=Marker.DELETEALL))
        for b in range(step.imagined.shape[0]):
            if not bool(step.active[b]):
                continue
            message = ImaginedStep(image=rgb8_image(step.imagined[b].permute(1, 2, 0).numpy(), stamp, p.frame_id),
                                   action=[float(a) for a in step.actions[b]], reward=float(step.rewards[b]),
                                   value=float(step.values[b]), step=step.step, rollout=b,
                                   spread=float(step.spread[b]), off_data=bool(step.off_data[b]))
            message.header.stamp = stamp
            message.header.frame_id = p.frame_id
            self.step_pub.publish(message)
            self.plots[b].add(reward=float(step.rewards[b]), value=float(step.values[b]),
                              spread=float(step.spread[b]))
            markers.markers += self.rollout_markers(b, step, stamp)
            if self.foxglove is not None:
                self.foxglove.log_step(stamp_ns, step.step, b, message.action.tolist(), message.reward, message.value,
                                       message.spread, message.off_data, labels[b])
        self.marker_pub.publish(markers)
        if self.foxglove is not None:
            self.foxglove.log_image("imagined", imagined, stamp_ns)
            if real is not None:
                self.foxglove.log_image("real", real, stamp_ns)
        self.frames_published += 1

    def rollout_markers(self, b: int, step: DreamStep, stamp: Any) -> list[Marker]:
        """A caption and the strip plot of rollout ``b``, side by side along x (1.2 m apart) in ``frame_id``."""
        p, plot = self.parameters, self.plots[b]
        origin = 1.2 * b
        off = bool(step.off_data[b])
        caption = Marker(ns="caption", id=b, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        caption.header.stamp, caption.header.frame_id = stamp, p.frame_id
        caption.pose.position.x, caption.pose.position.y, caption.pose.position.z = origin + 0.5, 0.0, 0.45
        caption.pose.orientation.w = 1.0
        caption.scale.z = 0.06
        caption.color.r, caption.color.g, caption.color.b, caption.color.a = (1.0, 0.2, 0.2, 1.0) if off else (
            1.0, 1.0, 1.0, 1.0)
        caption.text = (f"rollout {b} step {step.step}  r {float(step.rewards[b]):.3f}  V {float(step.values[b]):.3f}"
                        f"  spread {float(step.spread[b]):.2g}{'  OFF DATA' if off else ''}")
        markers = [caption]
        for k, (name, colour) in enumerate(SERIES.items()):
            line = Marker(ns=name, id=b, type=Marker.LINE_STRIP, action=Marker.ADD)
            line.header.stamp, line.header.frame_id = stamp, p.frame_id
            line.pose.orientation.w = 1.0
            line.scale.x = 0.01
            line.color.r, line.color.g, line.color.b, line.color.a = (*colour, 1.0)
            line.points = [Point(x=origin + x, y=0.0, z=y - 0.1 * k) for x, y in plot.points(name)]
            if len(line.points) >= 2:  # RViz rejects a line strip of fewer points
                markers.append(line)
        return markers

    # -- services --------------------------------------------------------------------------------------------

    def on_restart(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.dreamer.start_windows is None:
            response.success, response.message = False, "no rollout yet (waiting for camera frames)"
            return response
        self.dreamer.restart()
        for plot in self.plots:
            plot.clear()
        response.success, response.message = True, f"restarted from {'; '.join(self.dreamer.start_windows.labels)}"
        self.get_logger().info(response.message)
        return response

    def on_pick_start(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        start = self.next_start()
        if start is None:
            response.success, response.message = False, "no camera frames yet"
            return response
        self.begin(start)
        response.success, response.message = True, f"started from {'; '.join(start.labels)}"
        return response

    def on_set_parameters(self, parameters: list) -> SetParametersResult:
        """``ros2 param set /dream episode 7`` (or ``offset``) jumps to that dataset window at once; other
        parameters are fixed at start (a refused change says so)."""
        changes = {parameter.name: parameter.value for parameter in parameters}
        movable = {"episode", "offset"}
        if set(changes) - movable:
            return SetParametersResult(successful=False, reason=f"only {', '.join(sorted(movable))} change at run "
                                                                "time; restart the node for the others")
        if self.catalog is None:
            return SetParametersResult(successful=False, reason="episode and offset pick dataset windows; this "
                                                                "node starts from the camera")
        episode = int(changes.get("episode", self.parameters.episode))
        offset = int(changes.get("offset", self.parameters.offset))
        try:
            index = self.catalog.find(episode if episode >= 0 else self.catalog.episodes[0], offset)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.parameters.episode, self.parameters.offset, self.index = episode, offset, index
        self.begin(self.catalog.start(index, self.parameters.rollouts))
        return SetParametersResult(successful=True)

    def on_shutdown(self) -> None:
        self.report_rate()
        if self.foxglove is not None:
            self.foxglove.close()
        self.get_logger().info(f"published {self.frames_published} imagined steps")


def main(args: list[str] | None = None) -> int:
    return run_node(DreamNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
