"""Evaluation through ROS: the policy scored on the stand-in through the real deploy graph, over DDS.

Push-T runs ``deploy_pusht``; ``--robot go2`` runs ``deploy_go2`` and scores the Push Cube task the same way
(:func:`run_push_cube_episodes`: the per-step trace of the stand-in's ground truth, then
:func:`dmo_ros.policy.push_cube_eval.episode_from_trace`).

``dmo-eval-policy RUN --mode ros`` runs this module in its own process (the core imports no rclpy). It starts the
``deploy_pusht`` graph (``pusht_standin`` + the ``policy`` node, commanding disabled) with ``dmo-launch`` and plays
the evaluator as a ROS node:

1. waits for the stand-in's ground truth (``standin_state``) and the policy node's ``enable`` service;
2. per episode: publishes ``reset`` (not before episode 0) and waits for the stand-in's next episode — the
   stand-in seeds episode e from (seed, e) exactly as the direct evaluation does, so both start from the same
   poses — then enables the policy, starts counting control steps at the first command the policy sends, keeps
   the largest coverage and ends at success or after ``max_steps`` steps, then disables the policy (zero command);
3. stops the graph (SIGINT) and writes the per-episode results as JSON.

What differs from the direct evaluation is only what a real deployment adds: the camera runs at its own 10 Hz
next to the 5 Hz control steps (the policy may act on a frame up to 100 ms older than the latest step), and the
node's timer and the stand-in's are not in phase. ``test/policy/test_ros_evaluation.py`` states the resulting
tolerance.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from std_msgs.msg import Header
from std_srvs.srv import SetBool

from dmo_msgs.msg import StandinState
from dmo_ros.nodes.template import qos_profile
from dmo_ros.policy.evaluate import EpisodeResult, EvalConfig, summarize_episodes
from dmo_ros.policy.push_cube_eval import PushCubeEpisode, PushCubeEvalConfig, PushCubeResult, episode_from_trace
from dmo_ros.sims.pusht_tasks import TaskStatus, make_task

GRAPH = "deploy_pusht"
COMMAND_TOPIC = "/servo_node/delta_twist_cmds"
GRAPHS = {"pusht": (GRAPH, TwistStamped, COMMAND_TOPIC), "go2": ("deploy_go2", Twist, "/cmd_vel")}
"""Per robot: the deploy graph, the policy node's command type and topic."""


class EvaluationError(RuntimeError):
    """The graph did not come up or stopped answering; the message says what was missing."""


class Evaluator(Node):
    """The evaluator's ROS side: ground truth in, resets and enable calls out."""

    def __init__(self, robot: str = "pusht") -> None:
        super().__init__("policy_evaluator")
        reliable = qos_profile("reliable")
        self.states: list[StandinState] = []
        self.commands = 0
        self.moving_commands = 0
        """Commands that are not all zero (the policy's own; the node's safety stops send zeros)."""
        self.uncommanded: list[int] = []
        """Per episode run, its counted steps the stand-in took under a zero command (:func:`uncommanded_steps`)."""
        _graph, command_type, command_topic = GRAPHS[robot]
        self.create_subscription(StandinState, "standin_state", self.states.append, reliable)
        self.create_subscription(command_type, command_topic, self.on_command, reliable)
        self.reset_publisher = self.create_publisher(Header, "reset", reliable)
        self.enable_client = self.create_client(SetBool, "enable")

    def on_command(self, message: Twist | TwistStamped) -> None:
        self.commands += 1
        twist = message.twist if isinstance(message, TwistStamped) else message
        if any((twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y, twist.angular.z)):
            self.moving_commands += 1

    def spin_until(self, condition: Callable[[], bool], timeout: float, what: str,
                   alive: Callable[[], bool] = lambda: True) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise EvaluationError(f"no {what} within {timeout:.0f} s")
            if not alive():
                raise EvaluationError(f"the deploy graph stopped while waiting for {what}")
            rclpy.spin_once(self, timeout_sec=0.01)

    def set_enabled(self, enabled: bool, alive: Callable[[], bool], timeout: float = 30.0,
                    resend_after: float = 3.0) -> None:
        """Call the policy node's ``enable`` service, sending the request again every ``resend_after`` s until one
        answer comes, within ``timeout`` s. Resending is safe (setting enabled is idempotent) and needed: Fast DDS
        drops a service response when the server has not matched the client's response reader within 100 ms
        (ros2/rmw_fastrtps#390, #467), which a loaded machine makes happen right after the service turns ready."""
        deadline = time.monotonic() + timeout
        while True:
            future = self.enable_client.call_async(SetBool.Request(data=enabled))
            wait = min(resend_after, deadline - time.monotonic())
            try:
                self.spin_until(future.done, wait, "answer of the policy node's enable service", alive)
                break
            except EvaluationError:
                self.enable_client.remove_pending_request(future)
                if not alive():
                    raise
                if time.monotonic() >= deadline:
                    raise EvaluationError(f"no answer of the policy node's enable service within {timeout:.0f} s "
                                          f"(the request was sent every {resend_after:.0f} s)") from None
        if not future.result().success:
            raise EvaluationError(f"the policy node refused enable={enabled}: {future.result().message}")

    def reset(self) -> None:
        message = Header()
        message.stamp = self.get_clock().now().to_msg()
        self.reset_publisher.publish(message)


def commanded(state: StandinState) -> bool:
    """Whether the stand-in took this step under a non-zero command (``StandinState.command``)."""
    return bool(np.any(np.asarray(state.command) != 0.0))


def first_commanded_step(evaluator: Evaluator, episode: int, alive: Callable[[], bool]) -> int:
    """The stand-in step of ``episode`` after which the policy's commands apply: the step before the first one the
    stand-in took under a non-zero command, as its ``StandinState.command`` says.

    The stand-in's word, not the evaluator's timing: a command stamped before a step can still reach the stand-in
    after that step ran (DDS latency, a busy executor), and a loaded evaluator takes waiting messages in its
    subscriptions' order — both were seen in CI as an episode starting one step early (a 13 u gap in the final
    distance of a constant policy)."""

    def first() -> StandinState | None:
        return next((state for state in evaluator.states if state.episode == episode and commanded(state)), None)

    evaluator.spin_until(lambda: first() is not None, 5.0, "a stand-in control step taken under the policy's command",
                         alive)
    return first().step - 1


def uncommanded_steps(states: list[StandinState], episode: int, first_step: int, last_step: int) -> int:
    """Steps of ``episode`` in (first_step, last_step] the stand-in took under a zero command: the policy's command
    came later than ``command_timeout`` (the stand-in's safety stop). Zero on a machine that keeps up."""
    return sum(1 for state in states
               if state.episode == episode and first_step < state.step <= last_step and not commanded(state))


def run_episodes(evaluator: Evaluator, config: EvalConfig, alive: Callable[[], bool],
                 progress: Callable[[int, EpisodeResult], None] | None = None) -> list[EpisodeResult]:
    """The episodes of the module doc, with the graph already started."""
    evaluator.spin_until(lambda: bool(evaluator.states), 120.0, "standin_state from the stand-in", alive)
    evaluator.spin_until(lambda: evaluator.enable_client.service_is_ready(), 120.0,
                         "enable service of the policy node", alive)
    task = make_task(config.task)

    def status(state: StandinState) -> TaskStatus:  # the task's rules on the stand-in's ground truth
        goal = np.asarray(state.goal)
        # A reach task's goal is the episode's target [x, y, 0] (StandinState.goal); the T rests on its goal pose.
        target = goal[:2] if task.shows_target else None
        return task.status(np.asarray(state.agent), np.asarray(state.object), goal, float(state.progress), target)

    episodes: list[EpisodeResult] = []
    for index in range(config.episodes):
        if index:
            evaluator.reset()
            evaluator.spin_until(lambda i=index: evaluator.states[-1].episode == i, 10.0, f"episode {index} start",
                                 alive)
        start = evaluator.states[-1]
        now = status(start)
        start_distance = now.distance
        max_coverage, success, loose = float(start.progress), now.success, now.loose_success
        coverage = float(start.progress)
        if not success:
            # From the policy's first own (non-zero) command, as for Push Cube below: the node's safety zeros before
            # its first camera frame can last seconds on a loaded machine; the direct evaluation has a frame at once.
            commands = evaluator.moving_commands
            evaluator.set_enabled(True, alive)
            evaluator.spin_until(lambda c=commands: evaluator.moving_commands > c, 20.0,
                                 "a non-zero command of the policy (only zero commands: no camera frames?)", alive)
            first_step = first_commanded_step(evaluator, index, alive)
            seen = 0  # the states after first_step may have come in already
            steps = 0
            while not success and steps < config.max_steps:
                evaluator.spin_until(lambda s=seen: len(evaluator.states) > s, 5.0, "a stand-in control step", alive)
                for state in evaluator.states[seen:]:
                    if state.episode != index or state.step <= first_step or steps >= config.max_steps:
                        continue
                    steps, coverage, now = state.step - first_step, float(state.progress), status(state)
                    max_coverage = max(max_coverage, coverage)
                    success = success or bool(state.success)
                    loose = loose or now.loose_success
                    if success:
                        break
                seen = len(evaluator.states)
            evaluator.set_enabled(False, alive)
            evaluator.uncommanded.append(uncommanded_steps(evaluator.states, index, first_step, first_step + steps))
        else:
            steps = 0
            evaluator.uncommanded.append(0)
        episodes.append(EpisodeResult(success=success, max_coverage=max_coverage, steps=steps,
                                      final_coverage=coverage, final_distance=now.distance,
                                      start_distance=start_distance, loose_success=loose))
        if progress is not None:
            progress(index, episodes[-1])
        evaluator.states[:] = evaluator.states[-1:]  # keep the latest only: episodes may be long
    return episodes


def run_push_cube_episodes(evaluator: Evaluator, config: PushCubeEvalConfig, alive: Callable[[], bool],
                           progress: Callable[[int, PushCubeEpisode], None] | None = None) -> list[PushCubeEpisode]:
    """The Push Cube episodes through ``deploy_go2`` (graph already started), as :func:`run_episodes` runs Push-T's:
    the trace of each episode (robot pose, cube in view, cube-goal distance, success) from the stand-in's
    ``standin_state`` at its start and after every control step from the policy's first command on."""
    evaluator.spin_until(lambda: bool(evaluator.states), 120.0, "standin_state from the stand-in", alive)
    evaluator.spin_until(lambda: evaluator.enable_client.service_is_ready(), 120.0,
                         "enable service of the policy node", alive)
    episodes: list[PushCubeEpisode] = []

    def distance(state: StandinState) -> float:
        return float(np.linalg.norm(np.asarray(state.object[:2]) - np.asarray(state.goal[:2])))

    for index in range(config.episodes):
        if index:
            evaluator.reset()
            evaluator.spin_until(lambda i=index: evaluator.states[-1].episode == i, 10.0, f"episode {index} start",
                                 alive)
        start = evaluator.states[-1]
        trace = [start]
        if not start.success:
            # Count from the policy's first own (non-zero) command: until the node has a camera frame it sends the
            # zero of its safety stop ("no camera frame received yet"), which a loaded machine can make last
            # seconds after the graph starts; the direct evaluation has a frame from the first step.
            commands = evaluator.moving_commands
            evaluator.set_enabled(True, alive)
            evaluator.spin_until(lambda c=commands: evaluator.moving_commands > c, 20.0,
                                 "a non-zero command of the policy (only zero commands: no camera frames?)", alive)
            first_step = first_commanded_step(evaluator, index, alive)
            # Where the robot stood when the policy's first command took over.
            trace = [next((state for state in evaluator.states if state.episode == index and state.step == first_step),
                          evaluator.states[-1])]
            seen = 0  # the states after first_step may have come in already
            while not trace[-1].success and len(trace) <= config.max_steps:
                evaluator.spin_until(lambda s=seen: len(evaluator.states) > s, 5.0, "a stand-in control step", alive)
                for state in evaluator.states[seen:]:
                    if state.episode == index and state.step > first_step and len(trace) <= config.max_steps \
                            and not trace[-1].success:
                        trace.append(state)
                seen = len(evaluator.states)
            evaluator.set_enabled(False, alive)
            evaluator.uncommanded.append(uncommanded_steps(evaluator.states, index, first_step,
                                                           first_step + len(trace) - 1))
        else:
            evaluator.uncommanded.append(0)
        episodes.append(episode_from_trace(np.array([list(s.agent) for s in trace]),
                                           [bool(s.object_in_view) for s in trace], [distance(s) for s in trace],
                                           [bool(s.success) for s in trace]))
        if progress is not None:
            progress(index, episodes[-1])
        evaluator.states[:] = evaluator.states[-1:]
    return episodes


def evaluate_through_ros(run_dir: Path, config: EvalConfig | PushCubeEvalConfig, launch_args: list[str] | None = None,
                         log_path: Path | None = None, progress: Callable[[int, Any], None] | None = None,
                         robot: str = "pusht") -> dict:
    """Start the robot's deploy graph, run the episodes, stop the graph; the result as ``to_dict`` gives it (Push-T:
    :class:`EvalResult`; go2: :class:`PushCubeResult`)."""
    launcher = Path(sys.executable).parent / "dmo-launch"
    log_path = log_path or Path(tempfile.mkstemp(prefix="ros_eval_", suffix=".log")[1])
    task = [f"task:={config.task}"] if robot == "pusht" else []  # the Go2 stand-in plays Push Cube only
    command = [str(launcher), GRAPHS[robot][0], f"checkpoint:={run_dir}", f"seed:={config.seed}", *task,
               "start_enabled:=false", *(launch_args or [])]
    started = time.perf_counter()
    with open(log_path, "w") as log:
        graph = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        rclpy.init()
        evaluator = Evaluator(robot)
        try:
            if robot == "go2":
                episodes = run_push_cube_episodes(evaluator, config, lambda: graph.poll() is None, progress)
            else:
                episodes = run_episodes(evaluator, config, lambda: graph.poll() is None, progress)
        except EvaluationError as error:
            raise EvaluationError(f"{error}; the graph's output is in {log_path}") from None
        finally:
            evaluator.destroy_node()
            rclpy.try_shutdown()
            if graph.poll() is None:
                graph.send_signal(signal.SIGINT)
            try:
                graph.wait(timeout=30)
            except subprocess.TimeoutExpired:
                graph.kill()
                graph.wait()
    late = {index + 1: count for index, count in enumerate(evaluator.uncommanded) if count}
    if late:  # the scores are then not the policy's alone: say so beside them
        print(f"dmo-eval-policy: warning: control steps taken under a zero command (the policy's command came later "
              f"than the stand-in's command_timeout; a loaded machine?), per episode: {late}", file=sys.stderr)
    extra = {"uncommanded_steps": evaluator.uncommanded, "graph_log": str(log_path)}
    if robot == "go2":
        return {**PushCubeResult(episodes, time.perf_counter() - started).to_dict(), **extra}
    return {**summarize_episodes(episodes, time.perf_counter() - started).to_dict(), **extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dmo_ros.nodes.ros_evaluation",
                                     description="Evaluate a policy through the deploy_pusht graph (dmo-eval-policy "
                                                 "--mode ros runs this).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--robot", default="pusht", choices=sorted(GRAPHS),
                        help="pusht: deploy_pusht and EvalConfig; go2: deploy_go2 and PushCubeEvalConfig")
    parser.add_argument("--config", required=True, help="EvalConfig (go2: PushCubeEvalConfig) as JSON")
    parser.add_argument("--out", type=Path, required=True, help="write the result JSON here")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("launch_args", nargs="*", help="extra NAME:=VALUE arguments of the deploy graph")
    options = parser.parse_args(argv)
    go2 = options.robot == "go2"
    config = PushCubeEvalConfig(**json.loads(options.config)) if go2 else EvalConfig(**json.loads(options.config))

    def progress(index: int, episode: Any) -> None:
        if go2 and not options.quiet:
            outcome = f"success in {episode.steps_to_success} steps" if episode.success else "no success"
            print(f"  episode {index + 1}/{config.episodes} (ROS): {outcome}, final distance "
                  f"{episode.final_distance_m:.2f} m", file=sys.stderr, flush=True)
        elif not options.quiet:
            outcome = "success" if episode.success else "no success"
            print(f"  episode {index + 1}/{config.episodes} (ROS): {outcome}, max coverage {episode.max_coverage:.3f}, "
                  f"{episode.steps} steps", file=sys.stderr, flush=True)

    try:
        result = evaluate_through_ros(options.run_dir, config, options.launch_args,
                                      options.out.with_suffix(".graph.log"), progress, options.robot)
    except EvaluationError as error:
        print(f"dmo-eval-policy: error: {error}", file=sys.stderr)
        return 2
    options.out.write_text(json.dumps({"config": asdict(config), **result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
