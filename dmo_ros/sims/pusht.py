"""The Push-T stand-in's simulation: gym-pusht driven by 2-D end-effector deltas at 5 Hz.

Plain Python (numpy, gymnasium, gym-pusht); no ROS. The node ``pusht_standin`` wraps it.

gym-pusht's ``PushT-v0`` takes an absolute target position for its agent (a kinematic disc
pulled there by a PD controller: k_p = 100, k_v = 20); one env step runs
``1 / (dt * control_hz)`` = 10 physics steps of ``dt`` = 0.01 s, i.e. 0.1 s. This wrapper
plays a real arm commanded by end-effector deltas instead: per control step (0.2 s by
default, so two env steps), ``target = clip(agent_pos + delta, arena)``. The raw env lets
the agent leave the 512-unit arena (it is kinematic and passes through the walls); the
clip keeps its centre ``arena_margin`` units inside the arena border.

Units and frames: deltas are in metres in the table plane; ``arena_size_m`` metres span
the 512 arena units. The arena frame is gym-pusht's: x to the right and y *down* in the
camera image (the image's row index grows with y), origin at the image's top-left corner.

Tracking: the agent is PD-controlled toward ``agent_pos + delta`` for one control period,
so it covers a fraction of the delta per step: about 0.6 from rest, about 0.66 under a
steady command (the rest is lag, as with a real servo), see ``test/sims/test_pusht.py``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
import gymnasium as gym
import numpy as np
from gym_pusht.envs.pymunk_override import DrawOptions

from dmo_ros.sims.pusht_tasks import SUCCESS_COVERAGE, TASKS, TaskConfig, TaskStatus, make_task

with warnings.catch_warnings():  # as gym-pusht does: pygame warns about pkg_resources
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", category=DeprecationWarning)
    import pygame

ARENA_UNITS = 512.0
"""Side of gym-pusht's square arena in its own units (its render is 512 x 512 px)."""



@dataclass
class PushTConfig:
    seed: int = 0
    """Base seed: episode ``e`` resets gym-pusht with a seed derived from (seed, e)."""

    width: int = 96
    """Width in pixels of ``render()`` (the fixed camera over the table)."""

    height: int = 96
    """Height in pixels of ``render()``."""

    arena_size_m: float = 0.5
    """Metres spanned by the 512-unit arena; converts deltas from metres to arena units."""

    max_speed_m_s: float = 0.25
    """End-effector speed limit (m/s): a delta longer than this x control period is scaled down."""

    control_period_s: float = 0.2
    """Seconds per control step (5 Hz); a multiple of gym-pusht's 0.1 s env step."""

    arena_margin: float = 20.0
    """Arena units kept between the agent's target and the arena border (the agent's radius is 15)."""

    max_episode_steps: int = 0
    """Control steps after which ``done()`` is true (the caller resets); 0: never."""

    task: str = "push_t"
    """The task (:mod:`dmo_ros.sims.pusht_tasks`): reach, push_region, push_near or push_t (gym-pusht's own)."""

    task_config: TaskConfig = field(default_factory=TaskConfig)
    """The tasks' start distributions and success rules."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown Push-T task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if self.arena_size_m <= 0 or self.max_speed_m_s <= 0:
            raise ValueError("arena_size_m and max_speed_m_s must be positive")
        if not 0 <= self.arena_margin < ARENA_UNITS / 2:
            raise ValueError(f"arena_margin must be in [0, {ARENA_UNITS / 2:g})")
        if self.max_episode_steps < 0:
            raise ValueError("max_episode_steps must be >= 0")
        if self.control_period_s <= 0:
            raise ValueError("control_period_s must be positive")


@dataclass
class PushTState:
    """Ground truth of the stand-in at the current control step (evaluation only)."""

    episode: int
    """Episode counter: 0 for the first episode, +1 at every reset."""
    step: int
    """Control steps since the last reset."""
    agent: np.ndarray = field(repr=False)
    """Agent (end-effector) position [x, y] in arena units."""
    block: np.ndarray = field(repr=False)
    """T block pose [x, y, angle] (arena units, rad in [0, 2 pi))."""
    goal: np.ndarray = field(repr=False)
    """Goal T pose [x, y, angle]."""
    coverage: float = 0.0
    """Fraction of the goal T covered by the block (gym-pusht's coverage)."""
    success: bool = False
    """The task's success rule holds at this step (push_t and push_near: coverage > 0.95)."""
    target: np.ndarray | None = field(default=None, repr=False)
    """reach: the agent's target [x, y] this episode; None for the pushing tasks."""

    @property
    def operator_goal(self) -> np.ndarray:
        """The goal as the scripted operator, the expert and ``StandinState.goal`` give it: the reach tasks' target
        as [x, y, 0], else the goal T pose [x, y, angle] (arena units, radians)."""
        return self.goal if self.target is None else np.array([*self.target, 0.0])
    status: TaskStatus | None = None
    """The task's numbers at this step (distance, both success rules)."""


@dataclass(frozen=True)
class PushTSnapshot:
    """The stand-in's physical state at one instant (see :meth:`PushTSim.snapshot`)."""

    agent: tuple[float, float, float, float]
    """Agent [x, y, vx, vy] (arena units, units/s)."""
    block: tuple[float, float, float, float, float, float]
    """Block [x, y, angle, vx, vy, angular velocity] (arena units, rad, per second)."""
    step: int
    """Control steps since the last reset."""


def episode_seed(seed: int, episode: int) -> int:
    """The env seed of an episode: reproducible from (seed, episode), decorrelated across both."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, episode]).generate_state(1)[0])


class PushTSim:
    """gym-pusht's PushT-v0 as a table-top arm commanded by end-effector deltas."""

    def __init__(self, config: PushTConfig | None = None) -> None:
        self.config = config = config or PushTConfig()
        self.env = gym.make("gym_pusht/PushT-v0", obs_type="state").unwrapped
        self.env_step_s = 1.0 / self.env.control_hz  # 0.1 s: int(1 / (dt * control_hz)) physics steps of dt
        env_steps = config.control_period_s / self.env_step_s
        self.env_steps_per_control = round(env_steps)
        if self.env_steps_per_control < 1 or abs(env_steps - self.env_steps_per_control) > 1e-6:
            raise ValueError(
                f"control_period_s must be a multiple of gym-pusht's {self.env_step_s:g} s step, "
                f"got {config.control_period_s}"
            )
        self.units_per_m = ARENA_UNITS / config.arena_size_m
        self.max_delta_m = config.max_speed_m_s * config.control_period_s
        self._base_seed = config.seed
        self.task = make_task(config.task, config.task_config)
        self.target: np.ndarray | None = None
        self.episode = -1
        self.step_count = 0
        self._stale_contacts = False
        """Set by a reset that places bodies by hand, cleared by the next step (see :meth:`reset`)."""
        self.reset()

    # --- control -----------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Start the next episode (the first one is started by the constructor: episode 0).

        ``seed`` replaces the base seed for this and later episodes; the env is seeded
        from (base seed, episode), so a run is reproducible episode by episode.
        """
        if seed is not None:
            self._base_seed = int(seed)
        self.episode += 1
        self.step_count = 0
        seed = episode_seed(self._base_seed, self.episode)
        self.env.reset(seed=seed)
        env = self.env
        block = np.array([*env.block.position, env.block.angle], dtype=np.float64)
        start = self.task.start(self.agent_position(), block, np.random.default_rng([seed, 1]))
        self.target = None if start.target is None else np.asarray(start.target, dtype=np.float64)
        if start.agent is not None:
            env.agent.position, env.agent.velocity = tuple(float(v) for v in start.agent), (0.0, 0.0)
            env.space.reindex_shapes_for_body(env.agent)
        if start.block is not None:
            # Angle first: pymunk turns a body about its centre of gravity, the position is its origin.
            env.block.angle = float(start.block[2])
            env.block.position = tuple(float(v) for v in start.block[:2])
            env.block.velocity, env.block.angular_velocity = (0.0, 0.0), 0.0
            env.space.reindex_shapes_for_body(env.block)
        # Bodies placed by hand: the space's contact points are still those of gym-pusht's own reset placement, and
        # render() would draw them as stray red dots and lines until the first step recomputes them.
        self._stale_contacts = start.agent is not None or start.block is not None

    def clamp_delta(self, delta_xy_m: np.ndarray) -> np.ndarray:
        """The delta (m) actually applied: non-finite parts are 0, the length is at most max speed x period."""
        delta = np.asarray(delta_xy_m, dtype=np.float64).reshape(-1)
        if delta.shape != (2,):
            raise ValueError(f"a delta is [dx, dy] in metres, got shape {np.shape(delta_xy_m)}")
        delta = np.where(np.isfinite(delta), delta, 0.0)
        length = float(np.hypot(*delta))
        if length > self.max_delta_m:
            delta = delta * (self.max_delta_m / length)
        return delta

    def target_for(self, delta_xy_m: np.ndarray) -> np.ndarray:
        """The agent's target (arena units) for a delta: clip(agent + delta, arena minus margin)."""
        low, high = self.config.arena_margin, ARENA_UNITS - self.config.arena_margin
        return np.clip(self.agent_position() + self.clamp_delta(delta_xy_m) * self.units_per_m, low, high)

    def step(self, delta_xy_m: np.ndarray) -> None:
        """One control step: move the end effector by ``delta_xy_m`` metres (clamped, clipped)."""
        target = self.target_for(delta_xy_m)
        self._stale_contacts = False
        for _ in range(self.env_steps_per_control):
            self.env.step(target)
        self.step_count += 1

    def snapshot(self) -> PushTSnapshot:
        """The physical state now (bodies' poses and velocities, step counter), for :meth:`restore`.

        Evaluation tools use it to try several actions from one state (finite differences through
        the true dynamics); training never does.
        """
        agent, block = self.env.agent, self.env.block
        return PushTSnapshot(
            agent=(*agent.position, *agent.velocity),
            block=(*block.position, block.angle, *block.velocity, block.angular_velocity),
            step=self.step_count,
        )

    def restore(self, snapshot: PushTSnapshot) -> None:
        """Put the bodies back where :meth:`snapshot` found them (same episode and goal)."""
        env = self.env
        ax, ay, avx, avy = snapshot.agent
        bx, by, angle, bvx, bvy, omega = snapshot.block
        env.agent.position, env.agent.velocity = (ax, ay), (avx, avy)
        # Angle first: pymunk turns a body about its centre of gravity, the position is its origin.
        env.block.angle = angle
        env.block.position, env.block.velocity, env.block.angular_velocity = (bx, by), (bvx, bvy), omega
        env.space.reindex_shapes_for_body(env.agent)
        env.space.reindex_shapes_for_body(env.block)
        self.step_count = snapshot.step

    def done(self) -> bool:
        """True once ``max_episode_steps`` control steps have run (when that limit is > 0)."""
        limit = self.config.max_episode_steps
        return limit > 0 and self.step_count >= limit

    # --- observation -------------------------------------------------------------------

    def render(self) -> np.ndarray:
        """The fixed camera over the table: an (height, width, 3) uint8 RGB image."""
        if self._stale_contacts:
            return self.render_shapes()
        screen = self.env._draw()
        return np.ascontiguousarray(self.env._get_img(screen, self.config.width, self.config.height))

    def goal_image(self, agent: np.ndarray | None = None) -> np.ndarray:
        """The task's goal picture, same size as ``render``: reach, the scene with the agent on its target;
        the pushing tasks, the block placed on the goal pose, the agent where it is or, with ``agent`` (x, y in
        arena units; pushing tasks only), drawn there. The simulation's state is left as it was."""
        if self.task.shows_target:
            if agent is not None:
                raise ValueError(f"task {self.config.task!r} draws the agent on its target; agent= is for pushing")
            return self._target_image()
        env, block = self.env, self.env.block
        saved_angle, saved_position, saved_agent = block.angle, block.position, env.agent.position
        try:
            # Angle first: setting the angle turns the body about its centre of gravity, while
            # the position is the body's origin (where gym-pusht's goal T is drawn from).
            block.angle = float(env.goal_pose[2])
            block.position = tuple(float(v) for v in env.goal_pose[:2])
            env.space.reindex_shapes_for_body(block)  # the drawing reads the shapes' cached vertices
            if agent is not None:
                env.agent.position = (float(agent[0]), float(agent[1]))
                env.space.reindex_shapes_for_body(env.agent)
            return self.render_shapes()
        finally:
            block.angle, block.position, env.agent.position = saved_angle, saved_position, saved_agent
            env.space.reindex_shapes_for_body(block)
            env.space.reindex_shapes_for_body(env.agent)

    def render_shapes(self) -> np.ndarray:
        """The camera's picture as :meth:`render` draws it, but without pymunk's contact points: after bodies are
        placed by hand (a goal picture, the reward's evaluation paths) the space still holds the last step's
        arbiters, which would show as stray red dots and lines between the moved bodies."""
        env = self.env
        screen = pygame.Surface((int(ARENA_UNITS), int(ARENA_UNITS)))
        screen.fill((255, 255, 255))
        goal_body = env.get_goal_pose_body(env.goal_pose)
        for shape in env.block.shapes:
            points = [goal_body.local_to_world(v) for v in shape.get_vertices()]
            points = [(round(p.x), round(p.y)) for p in points]  # whole pixels, as gym-pusht draws it
            pygame.draw.polygon(screen, pygame.Color("LightGreen"), points + points[:1])
        options = DrawOptions(screen)
        options.flags = DrawOptions.DRAW_SHAPES
        env.space.debug_draw(options)
        return np.ascontiguousarray(env._get_img(screen, self.config.width, self.config.height))

    def _target_image(self) -> np.ndarray:
        """The scene now with the agent drawn on the reach target."""
        agent = self.env.agent
        saved = agent.position
        try:
            agent.position = tuple(float(v) for v in self.target)
            self.env.space.reindex_shapes_for_body(agent)
            return self.render_shapes()
        finally:
            agent.position = saved
            self.env.space.reindex_shapes_for_body(agent)

    def agent_position(self) -> np.ndarray:
        """The agent's [x, y] in arena units."""
        return np.array(self.env.agent.position, dtype=np.float64)

    def state(self) -> PushTState:
        """Ground truth now (for evaluation and the scripted expert, never for training)."""
        env = self.env
        block = np.array([*env.block.position, env.block.angle % (2 * np.pi)], dtype=np.float64)
        coverage = float(env._get_coverage())
        agent, goal = self.agent_position(), np.array(env.goal_pose, dtype=np.float64)
        status = self.task.status(agent, block, goal, coverage, self.target)
        return PushTState(
            episode=self.episode,
            step=self.step_count,
            agent=agent,
            block=block,
            goal=goal,
            coverage=coverage,
            success=status.success,
            target=None if self.target is None else self.target.copy(),
            status=status,
        )

    def close(self) -> None:
        self.env.close()


__all__ = [
    "ARENA_UNITS",
    "SUCCESS_COVERAGE",
    "PushTConfig",
    "PushTSim",
    "PushTSnapshot",
    "PushTState",
    "episode_seed",
]
