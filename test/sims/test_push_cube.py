"""The Push Cube scene (Go2 stand-in core): body-frame control, pushing, the ego camera. No ROS."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim


@pytest.fixture
def sim():
    with PushCubeSim(PushCubeConfig(seed=3)) as simulation:
        yield simulation


def angle_difference(a: float, b: float) -> float:
    return (a - b + math.pi) % (2 * math.pi) - math.pi


def test_forward_command_moves_the_robot_along_its_own_heading(sim):
    heading = 2.0  # about 115 deg: forward in the world is mostly +y and a little -x
    sim.set_poses(robot=np.array([0.0, 0.0, heading]), cube=np.array([1.5, -1.5, 0.0]))
    for _ in range(5):  # 1 s at 0.3 m/s
        sim.step(np.array([0.3, 0.0, 0.0]))
    robot = sim.state().robot
    displacement = robot[:2]
    assert np.linalg.norm(displacement) == pytest.approx(0.3, abs=0.03)
    direction = math.atan2(displacement[1], displacement[0])
    assert abs(angle_difference(direction, heading)) < math.radians(3)
    assert abs(angle_difference(robot[2], heading)) < math.radians(1)  # no turning


def test_sideways_command_moves_the_robot_to_its_left(sim):
    heading = -0.7
    sim.set_poses(robot=np.array([0.0, 0.0, heading]), cube=np.array([1.5, 1.5, 0.0]))
    for _ in range(5):
        sim.step(np.array([0.0, 0.2, 0.0]))
    displacement = sim.state().robot[:2]
    assert np.linalg.norm(displacement) == pytest.approx(0.2, abs=0.03)
    direction = math.atan2(displacement[1], displacement[0])
    assert abs(angle_difference(direction, heading + math.pi / 2)) < math.radians(3)


def test_yaw_rate_turns_the_robot_by_the_commanded_angle(sim):
    sim.set_poses(robot=np.array([0.0, 0.0, 0.5]), cube=np.array([1.5, 1.5, 0.0]))
    for _ in range(5):  # 1 s at -0.8 rad/s
        sim.step(np.array([0.0, 0.0, -0.8]))
    robot = sim.state().robot
    assert angle_difference(robot[2], 0.5) == pytest.approx(-0.8, abs=0.05)
    assert np.linalg.norm(robot[:2]) < 0.01  # turning on the spot


def test_an_oversized_command_is_clamped_to_the_limits(sim):
    config = sim.config
    sim.set_poses(robot=np.array([0.0, 0.0, 0.0]), cube=np.array([-1.5, 1.5, 0.0]))
    sim.step(np.array([50.0, -50.0, 1e6]))  # clamped, not an error
    assert np.allclose(sim.last_command, [config.max_vx, -config.max_vy, config.max_yaw_rate])
    sim.set_poses(robot=np.array([0.0, 0.0, 0.0]))
    for _ in range(5):
        sim.step(np.array([50.0, 0.0, 0.0]))
    travelled = sim.state().robot[0]
    assert travelled == pytest.approx(config.max_vx * 1.0, abs=0.05)  # 1 s at the limit, not at 50 m/s
    assert np.allclose(sim.clamp(np.array([np.nan, 0.1, -np.inf])), [0.0, 0.1, -config.max_yaw_rate])
    with pytest.raises(ValueError, match="3 components"):
        sim.step(np.array([1.0, 2.0]))


def test_driving_into_the_cube_pushes_it(sim):
    sim.set_poses(robot=np.array([-1.0, 0.0, 0.0]), cube=np.array([-0.3, 0.0, 0.0]))
    start = sim.state().cube.copy()
    for _ in range(10):  # 2 s at 0.4 m/s: reaches the cube (0.3 m gap) and pushes it
        sim.step(np.array([0.4, 0.0, 0.0]))
    cube = sim.state().cube
    assert cube[0] - start[0] > 0.25, cube  # pushed forward by tens of cm
    assert abs(cube[1] - start[1]) < 0.1
    assert sim.state().robot[0] < cube[0] - 0.3  # the robot stays behind the cube (no tunnelling)


def test_the_cube_leaves_the_view_when_the_robot_turns_away(sim):
    sim.set_poses(robot=np.array([0.0, 0.0, 0.0]), cube=np.array([0.9, 0.0, 0.0]))
    assert sim.state().cube_in_view
    in_view = []
    for _ in range(8):  # 1.6 s at 1 rad/s: the cube (straight ahead) ends ~90 deg to the right
        sim.step(np.array([0.0, 0.0, 1.0]))
        in_view.append(sim.state().cube_in_view)
    assert in_view[0] and not in_view[-1], in_view
    assert not sim.point_in_view(np.array([-1.0, 0.0, 0.1]))  # behind the camera


def test_the_image_shows_the_cube_when_it_is_in_view(sim):
    sim.set_poses(robot=np.array([0.0, 0.0, 0.0]), cube=np.array([0.8, 0.0, 0.0]))
    orange = orange_pixels
    with_cube = orange(sim.render())
    sim.set_poses(cube=np.array([-1.5, -1.5, 0.0]))
    assert with_cube > 50 and orange(sim.render()) < 5


def orange_pixels(image: np.ndarray) -> int:
    return int(np.sum((image[..., 0] > 180) & (image[..., 1] < 140) & (image[..., 2] < 80)))


def test_a_cube_right_in_front_while_pushing_is_in_view(sim):
    # Pushing: the cube touches the robot's front (0.45 m from its centre); its centre is below the image's lower
    # edge, but the cube fills the bottom of the image. The centre-only rule called this "out of view".
    sim.set_poses(robot=np.array([0.0, 0.0, 0.0]), cube=np.array([0.42, 0.0, 0.0]))
    assert not sim.point_in_view(np.array([0.42, 0.0, 0.1]))
    assert orange_pixels(sim.render()) > 500
    assert sim.state().cube_in_view


def test_in_view_agrees_with_what_the_camera_shows():
    rng = np.random.default_rng(0)
    agree, total = 0, 0
    with PushCubeSim(PushCubeConfig(seed=5)) as simulation:
        for _ in range(60):
            distance, bearing = rng.uniform(0.4, 2.0), rng.uniform(-np.pi, np.pi)
            cube = np.array([distance * math.cos(bearing), distance * math.sin(bearing), rng.uniform(-1, 1)])
            simulation.set_poses(robot=np.array([0.0, 0.0, 0.0]), cube=cube)
            shown = orange_pixels(simulation.render()) > 3
            agree += shown == simulation.state().cube_in_view
            total += 1
    assert agree >= total - 2, f"in view disagrees with the image in {total - agree}/{total} placements"


def test_render_has_the_configured_size_and_is_not_constant():
    with PushCubeSim(PushCubeConfig(seed=0, width=80, height=60)) as simulation:
        image = simulation.render()
        assert image.shape == (60, 80, 3) and image.dtype == np.uint8
        assert image.std() > 10
        simulation.step(np.array([0.0, 0.0, 1.0]))
        assert np.abs(simulation.render().astype(int) - image).mean() > 2  # the view changes as it turns


def test_the_same_seed_gives_the_same_resets_and_images():
    def run(seed: int) -> list:
        with PushCubeSim(PushCubeConfig(seed=seed)) as simulation:
            records = []
            for _ in range(3):
                simulation.step(np.array([0.3, 0.1, 0.4]))
                state = simulation.state()
                records.append((state.episode, state.robot, state.cube, state.goal, simulation.render()))
                simulation.reset()
            return records

    first, again, other = run(7), run(7), run(8)
    assert [r[0] for r in first] == [0, 1, 2]
    for a, b in zip(first, again, strict=True):
        assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:], strict=True))
    assert not np.allclose(first[0][1], other[0][1])  # another seed, another placement
    assert not np.allclose(first[0][1], first[1][1])  # another episode, another placement


def test_resets_place_the_cube_ahead_inside_the_arena_and_sometimes_out_of_view():
    with PushCubeSim(PushCubeConfig(seed=11)) as simulation:
        in_view = []
        half = simulation.config.arena_size / 2
        for episode in range(40):
            state = simulation.reset() if episode else simulation.state()
            assert state.episode == episode and state.step == 0 and state.progress == 0.0
            assert not state.success
            offset = state.cube[:2] - state.robot[:2]
            bearing = angle_difference(math.atan2(offset[1], offset[0]), state.robot[2])
            assert abs(bearing) < math.radians(61) and 0.59 < np.linalg.norm(offset) < 1.61
            assert np.all(np.abs(state.cube[:2]) < half) and np.all(np.abs(state.goal[:2]) < half)
            in_view.append(state.cube_in_view)
        assert 0 < sum(in_view) < len(in_view)
        assert simulation.reset(seed=11).episode == 0  # a new seed restarts the count


def test_progress_and_success_follow_the_cube_to_the_goal(sim):
    goal = sim.state().goal
    start = sim.start_distance
    sim.set_poses(cube=np.array([goal[0], goal[1], 0.0]))
    state = sim.state()
    assert state.success and state.progress == pytest.approx(1.0)
    direction = np.array([1.0, 0.0])
    sim.set_poses(cube=np.array([*(goal[:2] + direction * start / 2), 0.0]))
    assert sim.state().progress == pytest.approx(0.5, abs=1e-3) and not sim.state().success


def test_restore_returns_to_a_snapshot_exactly(sim):
    """Evaluation tools try several commands from one state: after restore the same command gives the same
    state and picture, and another command another one."""
    for _ in range(4):
        sim.step(np.array([0.4, 0.0, 0.3]))
    snapshot = sim.snapshot()
    sim.step(np.array([0.5, 0.1, -0.5]))
    first_state, first_frame = sim.state(), sim.render()
    sim.restore(snapshot)
    assert sim.steps == 4
    sim.step(np.array([0.5, 0.1, -0.5]))
    np.testing.assert_array_equal(sim.render(), first_frame)
    np.testing.assert_allclose(sim.state().robot, first_state.robot)
    sim.restore(snapshot)
    sim.step(np.array([-0.5, 0.0, 0.5]))
    assert not np.allclose(sim.state().robot, first_state.robot)


def test_episode_over_after_max_episode_steps():
    with PushCubeSim(PushCubeConfig(max_episode_steps=2)) as simulation:
        simulation.step(np.zeros(3))
        assert not simulation.episode_over
        simulation.step(np.zeros(3))
        assert simulation.episode_over
        simulation.reset()
        assert not simulation.episode_over


def test_step_and_render_speed_at_96_pixels():
    """Not a benchmark gate: a loose floor that catches a broken (e.g. software-slow) setup."""
    with PushCubeSim(PushCubeConfig(seed=0)) as simulation:
        simulation.render()  # create the GL context first
        frames, started = 50, time.perf_counter()
        for _ in range(frames):
            simulation.step(np.array([0.2, 0.0, 0.3]))
            simulation.render()
        rate = frames / (time.perf_counter() - started)
    print(f"push_cube step+render at 96x96: {rate:.0f} frames/s")
    assert rate > 20
