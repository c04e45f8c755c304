"""Push Cube: the Unitree Go2 stand-in's world, a MuJoCo scene seen from an ego camera.

A walled square arena with a textured floor, a flat goal disc (visual only), a box-shaped
robot about the Go2's size on planar joints (slide x, slide y, hinge yaw) and a free cube.
The robot follows BODY-FRAME velocity commands (vx forward, vy left, yaw rate) through
velocity actuators whose world-frame targets are recomputed from the robot's heading every
physics substep, with bounded forces: it pushes the cube and stalls against a wall. A
camera on the robot's front looks forward, tilted down, so the cube is visible when ahead
and leaves the view when the robot turns away: that is the point of the task.

No ROS here: ``dmo_ros.nodes.go2_standin`` is the thin node around this class.

Rendering is offscreen. ``MUJOCO_GL`` is read when mujoco is first imported, so this
module sets a default (``egl``: Mesa llvmpipe on CPU machines, a GPU's EGL where there is
one) *before* importing mujoco; set ``MUJOCO_GL`` yourself (``osmesa``, ``glfw``) to
override it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

# Must precede the mujoco import: mujoco picks its GL backend at import time.
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

ROBOT_HALF_SIZE = (0.30, 0.15, 0.15)  # the Go2's body: ~0.6 x 0.3 x 0.3 m
ROBOT_MASS = 15.0  # kg, as the Go2
CUBE_HALF = 0.10  # a 0.2 m cube
CUBE_MASS = 1.0  # kg
CAMERA_NAME = "ego"


@dataclass
class PushCubeConfig:
    """Settings of the Push Cube scene (all lengths in metres, angles in radians)."""

    seed: int = 0
    """Base seed: the placements of episode ``e`` are drawn from (seed, e), so runs repeat."""
    width: int = 96
    """Camera image width in pixels."""
    height: int = 96
    """Camera image height in pixels."""
    control_period: float = 0.2
    """Simulated seconds per ``step`` (one command held for this long): 5 Hz control."""
    timestep: float = 0.005
    """Physics timestep; ``control_period`` is split into whole substeps of about this length."""
    max_vx: float = 0.5
    """Forward/backward speed limit |vx| (m/s); larger commands are clamped."""
    max_vy: float = 0.3
    """Sideways speed limit |vy| (m/s)."""
    max_yaw_rate: float = 1.0
    """Turn rate limit |yaw rate| (rad/s)."""
    arena_size: float = 4.0
    """Side of the square arena inside the walls (m)."""
    goal_radius: float = 0.25
    """Radius of the goal disc; success is the cube's centre inside it."""
    max_episode_steps: int = 0
    """Control steps after which ``episode_over`` is true (the owner resets); 0 = never."""
    camera_fovy: float = 70.0
    """Vertical field of view of the ego camera (degrees)."""
    camera_tilt: float = 28.0
    """Downward tilt of the ego camera (degrees below the horizon)."""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError("image width and height must be positive")
        if self.control_period <= 0 or self.timestep <= 0:
            raise ValueError("control_period and timestep must be positive")
        if min(self.max_vx, self.max_vy, self.max_yaw_rate) < 0:
            raise ValueError("velocity limits must be >= 0")
        if self.arena_size < 2.0:
            raise ValueError("arena_size must be at least 2 m")
        if self.goal_radius <= 0 or self.max_episode_steps < 0:
            raise ValueError("goal_radius must be positive and max_episode_steps >= 0")


@dataclass
class PushCubeState:
    """Ground truth after a reset or step (for evaluation and the scripted operator only)."""

    episode: int
    """Episode counter: 0 after the first reset, +1 at every reset."""
    step: int
    """Control steps since the last reset."""
    robot: np.ndarray
    """Robot pose [x, y, yaw] in the world frame (arena centre at the origin)."""
    cube: np.ndarray
    """Cube pose [x, y, yaw]."""
    goal: np.ndarray
    """Goal region [x, y, radius]."""
    progress: float
    """clip(1 - cube-to-goal distance / that distance at reset, 0, 1)."""
    success: bool
    """Whether the cube's centre is inside the goal region."""
    cube_in_view: bool
    """Whether any part of the cube projects inside the camera image, in front of the camera (a point of a 3 x 3 x 3
    grid over the cube's corners, edge midpoints, face centres and centre: a cube right in front of the robot, whose
    centre is below the image's lower edge, still fills the view)."""


def scene_xml(config: PushCubeConfig) -> str:
    """The MJCF of the scene for ``config``."""
    half = config.arena_size / 2
    wall_t, wall_h = 0.05, 0.3
    rx, ry, rz = ROBOT_HALF_SIZE
    tilt = math.radians(config.camera_tilt)
    # Camera frame: x = image right = robot -y; y = image up = forward tilted up; it looks along -z.
    up = (math.sin(tilt), 0.0, math.cos(tilt))
    wall_colours = ("0.25 0.6 0.6 1", "0.3 0.45 0.75 1", "0.85 0.8 0.45 1", "0.55 0.35 0.7 1")  # none orange
    walls = []
    for i, (x, y, sx, sy) in enumerate(
        [
            (half + wall_t, 0, wall_t, half + 2 * wall_t),
            (-half - wall_t, 0, wall_t, half + 2 * wall_t),
            (0, half + wall_t, half, wall_t),
            (0, -half - wall_t, half, wall_t),
        ]
    ):
        walls.append(
            f'<geom name="wall{i}" type="box" pos="{x} {y} {wall_h}" size="{sx} {sy} {wall_h}" '
            f'rgba="{wall_colours[i]}" contype="3" conaffinity="3"/>'
        )
    # Collision bits: floor 2, robot 1, cube and walls 3. The robot never touches the floor
    # (it has no vertical freedom anyway); the cube rests on the floor; all meet the walls.
    return f"""
<mujoco model="push_cube">
  <option timestep="{config.timestep}" integrator="implicitfast"/>
  <visual>
    <global offwidth="{max(config.width, 64)}" offheight="{max(config.height, 64)}"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5"/>
    <quality shadowsize="0"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" width="256" height="256"
             rgb1="0.55 0.55 0.52" rgb2="0.38 0.38 0.36" mark="edge" markrgb="0.9 0.9 0.9"/>
    <material name="floor" texture="grid" texrepeat="{config.arena_size} {config.arena_size}"
              texuniform="false"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="-0.3 -0.2 -1" diffuse="0.4 0.4 0.4" castshadow="false"/>
    <geom name="floor" type="plane" size="{half + 0.5} {half + 0.5} 0.1" material="floor"
          contype="2" conaffinity="2" friction="0.6 0.005 0.0001"/>
    {"".join(walls)}
    <body name="goal" mocap="true" pos="0 0 0">
      <geom name="goal" type="cylinder" size="{config.goal_radius} 0.002" pos="0 0 0.002"
            rgba="0.15 0.8 0.3 1" contype="0" conaffinity="0"/>
    </body>
    <body name="robot" pos="0 0 {rz + 0.02}">
      <joint name="robot_x" type="slide" axis="1 0 0" damping="0"/>
      <joint name="robot_y" type="slide" axis="0 1 0" damping="0"/>
      <joint name="robot_yaw" type="hinge" axis="0 0 1" damping="0"/>
      <geom name="robot" type="box" size="{rx} {ry} {rz}" mass="{ROBOT_MASS}" rgba="0.2 0.2 0.22 1"
            contype="1" conaffinity="1" friction="0.4 0.005 0.0001"/>
      <geom name="head" type="box" pos="{rx - 0.03} 0 {rz + 0.03}" size="0.03 0.08 0.03" mass="0.1"
            rgba="0.9 0.9 0.9 1" contype="0" conaffinity="0"/>
      <camera name="{CAMERA_NAME}" pos="{rx + 0.01} 0 {rz + 0.05}" fovy="{config.camera_fovy}"
              xyaxes="0 -1 0 {up[0]:.6f} {up[1]:.6f} {up[2]:.6f}"/>
    </body>
    <body name="cube" pos="1 0 {CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="{CUBE_MASS}"
            rgba="0.95 0.45 0.1 1" contype="3" conaffinity="3" friction="0.5 0.005 0.0001"/>
    </body>
  </worldbody>
  <actuator>
    <velocity name="vx" joint="robot_x" kv="{ROBOT_MASS * 60}" forcerange="-300 300"/>
    <velocity name="vy" joint="robot_y" kv="{ROBOT_MASS * 60}" forcerange="-300 300"/>
    <velocity name="wz" joint="robot_yaw" kv="40" forcerange="-60 60"/>
  </actuator>
</mujoco>
"""


_GRID = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)
"""Offsets (in half sides) of the points of a box checked by :meth:`PushCubeSim.box_in_view`; centre first."""
_GRID = _GRID[np.argsort(np.abs(_GRID).sum(axis=1), kind="stable")]


def _yaw_of_quaternion(q: np.ndarray) -> float:
    w, x, y, z = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


_SNAPSHOT_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
"""What :meth:`PushCubeSim.snapshot` keeps: time, positions, velocities, actuator states, mocap (the goal marker)."""


@dataclass(frozen=True)
class PushCubeSnapshot:
    """A :class:`PushCubeSim` state to return to (:meth:`PushCubeSim.snapshot`)."""

    physics: np.ndarray
    """MuJoCo's ``mjSTATE_FULLPHYSICS`` vector (``mj_getState``)."""
    steps: int
    """Control steps since the episode's reset."""
    last_command: np.ndarray
    """(3,) the last clamped command [vx, vy, yaw rate]."""


class PushCubeSim:
    """The Push Cube scene: ``reset``, ``step(command)``, ``render()``, ``state()``."""

    def __init__(self, config: PushCubeConfig | None = None) -> None:
        self.config = config = config or PushCubeConfig()
        self.model = mujoco.MjModel.from_xml_string(scene_xml(config))
        self.data = mujoco.MjData(self.model)
        self.substeps = max(1, round(config.control_period / config.timestep))
        self.model.opt.timestep = config.control_period / self.substeps
        self._renderer: mujoco.Renderer | None = None
        self._camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)
        self._cube_qpos = self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "cube")]
        self._cube_qvel = self.model.jnt_dofadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "cube")]
        self.limits = np.array([config.max_vx, config.max_vy, config.max_yaw_rate])
        self.seed = config.seed
        self.episode = -1
        self.steps = 0
        self.goal = np.zeros(3)
        self.start_distance = 1.0
        self.last_command = np.zeros(3)
        self._frame: np.ndarray | None = None
        self.reset()

    # -- episode -----------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> PushCubeState:
        """Start the next episode. A ``seed`` replaces the base seed and restarts the count at 0.

        Placements come from (seed, episode): the robot anywhere in the arena with any
        heading, the cube 0.6-1.6 m ahead within +-60 deg of the heading (so not always in
        view), the goal 0.9-2.2 m from the cube, clear of the robot.
        """
        if seed is not None:
            self.seed = int(seed)
            self.episode = -1
        self.episode += 1
        self.steps = 0
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.episode])
        half = self.config.arena_size / 2
        robot_margin, cube_margin = 0.5, 0.7  # a cube closer to a wall cannot be pushed off it
        for _ in range(1000):
            robot = np.array([*rng.uniform(-half + robot_margin, half - robot_margin, 2), rng.uniform(-np.pi, np.pi)])
            distance, bearing = rng.uniform(0.6, 1.6), rng.uniform(-np.radians(60), np.radians(60))
            angle = robot[2] + bearing
            cube_xy = robot[:2] + distance * np.array([math.cos(angle), math.sin(angle)])
            if np.any(np.abs(cube_xy) > half - cube_margin):
                continue
            goal_margin = self.config.goal_radius + 0.15
            goal_xy = rng.uniform(-half + goal_margin, half - goal_margin, 2)
            goal_cube = float(np.linalg.norm(goal_xy - cube_xy))
            if not 0.9 <= goal_cube <= 2.2 or np.linalg.norm(goal_xy - robot[:2]) < 0.6:
                continue
            break
        else:  # pragma: no cover - the ranges above leave plenty of room in a >= 2 m arena
            raise RuntimeError("could not place the robot, cube and goal")
        cube_yaw = rng.uniform(-np.pi / 4, np.pi / 4)

        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[0:3] = robot
        a = self._cube_qpos
        self.data.qpos[a : a + 3] = (cube_xy[0], cube_xy[1], CUBE_HALF)
        self.data.qpos[a + 3 : a + 7] = (math.cos(cube_yaw / 2), 0.0, 0.0, math.sin(cube_yaw / 2))
        self.data.mocap_pos[0] = (goal_xy[0], goal_xy[1], 0.0)
        self.goal = np.array([goal_xy[0], goal_xy[1], self.config.goal_radius])
        self.start_distance = max(goal_cube, 1e-6)
        self.last_command = np.zeros(3)
        mujoco.mj_forward(self.model, self.data)
        self._frame = None
        return self.state()

    @property
    def episode_over(self) -> bool:
        """Whether ``max_episode_steps`` (> 0) control steps have passed since the reset."""
        limit = self.config.max_episode_steps
        return limit > 0 and self.steps >= limit

    # -- control -----------------------------------------------------------------------------

    def clamp(self, command: np.ndarray) -> np.ndarray:
        """The command [vx, vy, yaw rate] within the limits; NaN/inf components become 0 / the limit."""
        command = np.asarray(command, dtype=float).reshape(-1)
        if command.shape != (3,):
            raise ValueError(f"command must have 3 components (vx, vy, yaw rate), got {command.shape[0]}")
        command = np.nan_to_num(command, nan=0.0, posinf=np.inf, neginf=-np.inf)
        return np.clip(command, -self.limits, self.limits)

    def step(self, command: np.ndarray) -> None:
        """Hold the body-frame command [vx, vy, yaw rate] (clamped) for one control period."""
        vx, vy, wz = self.last_command = self.clamp(command)
        for _ in range(self.substeps):
            yaw = self.data.qpos[2]
            c, s = math.cos(yaw), math.sin(yaw)
            self.data.ctrl[:] = (c * vx - s * vy, s * vx + c * vy, wz)
            mujoco.mj_step(self.model, self.data)
        self.steps += 1
        self._frame = None

    def snapshot(self) -> PushCubeSnapshot:
        """The physical state now (MuJoCo's full physics state, the step counter, the last command), for
        :meth:`restore`. Evaluation tools use it to try several commands from one state (finite differences
        through the true dynamics); training never does."""
        state = np.empty(mujoco.mj_stateSize(self.model, _SNAPSHOT_STATE))
        mujoco.mj_getState(self.model, self.data, state, _SNAPSHOT_STATE)
        return PushCubeSnapshot(physics=state, steps=self.steps, last_command=self.last_command.copy())

    def restore(self, snapshot: PushCubeSnapshot) -> None:
        """Put the robot and the cube back where :meth:`snapshot` found them (same episode and goal)."""
        mujoco.mj_setState(self.model, self.data, snapshot.physics, _SNAPSHOT_STATE)
        mujoco.mj_forward(self.model, self.data)
        self.steps, self.last_command = snapshot.steps, snapshot.last_command.copy()
        self._frame = None

    # -- observation -------------------------------------------------------------------------

    def render(self) -> np.ndarray:
        """The ego camera image, (height, width, 3) uint8 RGB (cached until the next step/reset)."""
        if self._frame is None:
            if self._renderer is None:
                self._renderer = mujoco.Renderer(self.model, self.config.height, self.config.width)
            self._renderer.update_scene(self.data, camera=self._camera_id)
            self._frame = self._renderer.render().copy()
        return self._frame.copy()

    def robot_pose(self) -> np.ndarray:
        return np.array([self.data.qpos[0], self.data.qpos[1], _wrap(float(self.data.qpos[2]))])

    def cube_pose(self) -> np.ndarray:
        a = self._cube_qpos
        return np.array([self.data.qpos[a], self.data.qpos[a + 1], _yaw_of_quaternion(self.data.qpos[a + 3 : a + 7])])

    def point_in_view(self, point: np.ndarray) -> bool:
        """Whether a world point projects inside the ego camera's image, in front of it."""
        position = self.data.cam_xpos[self._camera_id]
        rotation = self.data.cam_xmat[self._camera_id].reshape(3, 3)  # columns: camera axes in world
        local = rotation.T @ (np.asarray(point, dtype=float) - position)
        depth = -local[2]  # the camera looks along its -z axis
        if depth <= 1e-6:
            return False
        half_height = math.tan(math.radians(self.model.cam_fovy[self._camera_id]) / 2)
        half_width = half_height * self.config.width / self.config.height
        return bool(abs(local[0] / depth) <= half_width and abs(local[1] / depth) <= half_height)

    def box_in_view(self, centre: np.ndarray, yaw: float, half: float = CUBE_HALF) -> bool:
        """Whether any of the 27 points of a 3 x 3 x 3 grid over an upright box of half side ``half`` (m) centred at
        ``centre`` [x, y, z] with heading ``yaw`` (corners, edge midpoints, face centres, centre) is in view.

        Occlusion is not modelled (in the arena only the walls could hide the cube, and the cube stays 0.7 m
        from them at reset). The centre alone is not enough: pushing, the cube's centre is ~0.1 m ahead of and
        0.27 m below the camera, outside its view, while the cube fills the lower third of the image."""
        c, s = math.cos(yaw), math.sin(yaw)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return any(self.point_in_view(np.asarray(centre, dtype=float) + rotation @ (half * offset))
                   for offset in _GRID)

    def state(self) -> PushCubeState:
        robot, cube = self.robot_pose(), self.cube_pose()
        distance = float(np.linalg.norm(cube[:2] - self.goal[:2]))
        a = self._cube_qpos
        return PushCubeState(
            episode=self.episode,
            step=self.steps,
            robot=robot,
            cube=cube,
            goal=self.goal.copy(),
            progress=float(np.clip(1.0 - distance / self.start_distance, 0.0, 1.0)),
            success=distance < self.config.goal_radius,
            cube_in_view=self.box_in_view(self.data.qpos[a : a + 3], float(cube[2])),
        )

    def set_poses(self, robot: np.ndarray | None = None, cube: np.ndarray | None = None) -> None:
        """Place the robot [x, y, yaw] and/or the cube [x, y, yaw] at rest (tests, scripted scenes)."""
        if robot is not None:
            self.data.qpos[0:3] = robot
            self.data.qvel[0:3] = 0.0
        if cube is not None:
            a, v = self._cube_qpos, self._cube_qvel
            self.data.qpos[a : a + 3] = (cube[0], cube[1], CUBE_HALF)
            self.data.qpos[a + 3 : a + 7] = (math.cos(cube[2] / 2), 0.0, 0.0, math.sin(cube[2] / 2))
            self.data.qvel[v : v + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._frame = None

    def close(self) -> None:
        """Release the offscreen GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> PushCubeSim:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
