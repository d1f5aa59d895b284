"""The temporal stabiliser: less flicker where nothing moves, no lag where something does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from personseg.video import Stabilizer
from personseg.video.stabilize import FlowStabilizer
from synthetic import edge_column, panning


def flicker(probs: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(probs)]))


def scene(h: int, w: int, edge: int) -> tuple[np.ndarray, np.ndarray]:
    """A frame (bright left of ``edge``, dark right) and its truth probability, at the same size."""
    truth = np.zeros((h, w), np.float32)
    truth[:, :edge] = 1.0
    frame = np.where(truth[..., None] > 0, 210, 40).astype(np.uint8).repeat(3, axis=2)
    return frame, truth


def test_static_noisy_input_flickers_at_most_half_as_much():
    rng = np.random.default_rng(0)
    frame, truth = scene(48, 64, 30)
    soft = np.clip(truth * 0.8 + 0.1, 0, 1)
    raw, smoothed = [], []
    stab = Stabilizer()
    for _ in range(40):
        noisy_frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        prob = np.clip(soft + rng.normal(0, 0.15, soft.shape), 0, 1).astype(np.float32)
        raw.append(prob)
        smoothed.append(stab.update(prob, noisy_frame))
    assert flicker(smoothed[5:]) <= 0.5 * flicker(raw[5:])
    # and it stays unbiased: the average is still the clean probability
    assert np.abs(np.mean(smoothed[5:], axis=0) - soft).mean() < 0.05


def test_moving_edge_is_followed_immediately():
    rng = np.random.default_rng(1)
    stab = Stabilizer(strength=0.9)
    for t in range(20):
        edge = 10 + 2 * t
        frame, truth = scene(48, 64, edge)
        prob = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
        out = stab.update(prob, frame)
        if t:
            newly = slice(edge - 2, edge)  # the columns the edge just swept over
            assert out[:, newly].mean() > 0.85, t
            assert np.abs(out - truth).mean() < 0.05


def test_confident_new_prediction_is_taken_over_an_unsure_past():
    stab = Stabilizer(strength=0.9)
    frame = np.full((16, 16, 3), 100, np.uint8)
    stab.update(np.full((16, 16), 0.5, np.float32), frame)
    out = stab.update(np.ones((16, 16), np.float32), frame)
    assert out.min() > 0.9  # weight on the unsure past: 0.9 * (1 + 0 - 1) = 0


def test_scene_cut_and_strength_zero_pass_the_prediction_through():
    rng = np.random.default_rng(2)
    prob = rng.random((16, 16)).astype(np.float32)
    off = Stabilizer(strength=0.0)
    off.update(rng.random((16, 16)).astype(np.float32), np.zeros((16, 16, 3), np.uint8))
    assert np.array_equal(off.update(prob, np.zeros((16, 16, 3), np.uint8)), prob)
    stab = Stabilizer()
    stab.update(rng.random((16, 16)).astype(np.float32), np.zeros((16, 16, 3), np.uint8))
    assert np.array_equal(stab.update(prob, np.full((16, 16, 3), 255, np.uint8)), prob)


def test_stabilizer_validates_its_settings():
    with pytest.raises(ValueError, match="strength"):
        Stabilizer(strength=1.0)
    with pytest.raises(ValueError, match="motion_low"):
        Stabilizer(motion_low=0.1, motion_high=0.05)


# --------------------------------------------------------------------------- motion-compensated (flow)


def test_flow_stabilizer_follows_a_panning_camera_without_lag():
    rng = np.random.default_rng(1)
    clip = panning(64, 128, 12, speed=3, rng=rng)
    stab = FlowStabilizer(strength=0.8)
    for frame, truth in clip:
        noisy = np.clip(truth * 0.8 + 0.1 + rng.normal(0, 0.1, truth.shape), 0, 1).astype(np.float32)
        out = stab.update(noisy, frame)
        assert abs(edge_column(out) - edge_column(truth)) <= 1.5  # the moving edge does not lag behind


def test_flow_stabilizer_steadies_noise_under_a_panning_camera_where_the_plain_one_cannot():
    rng = np.random.default_rng(2)
    clip = panning(64, 128, 30, speed=2, rng=rng)
    flow, plain = FlowStabilizer(strength=0.8), Stabilizer(strength=0.8)
    err_raw, err_flow, err_plain = [], [], []
    for frame, truth in clip:
        noisy = np.clip(truth * 0.8 + 0.1 + rng.normal(0, 0.15, truth.shape), 0, 1).astype(np.float32)
        clean = truth * 0.8 + 0.1
        err_raw.append(np.abs(noisy - clean).mean())
        err_flow.append(np.abs(flow.update(noisy, frame) - clean).mean())
        err_plain.append(np.abs(plain.update(noisy, frame) - clean).mean())
    assert np.mean(err_flow[5:]) <= 0.6 * np.mean(err_raw[5:])
    # the plain smoother's frame-difference gate sees motion on every textured pixel and lets the noise through
    assert np.mean(err_flow[5:]) <= 0.75 * np.mean(err_plain[5:])


def test_flow_stabilizer_keeps_still_edges_still():
    frame, truth = scene(48, 64, 30)
    stab = FlowStabilizer()
    outs = [stab.update(truth, frame) for _ in range(5)]
    assert all(np.array_equal(o >= 0.5, truth >= 0.5) for o in outs)


@pytest.mark.parametrize("cls", [Stabilizer, FlowStabilizer])
def test_restarted_says_when_the_past_was_dropped(cls):
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
    prob = np.full((16, 16), 0.8, np.float32)
    stab = cls()
    stab.update(prob, frame)
    assert stab.restarted  # the first frame
    stab.update(prob, frame)
    assert not stab.restarted
    stab.update(prob, 255 - frame)  # a scene cut
    assert stab.restarted
    stab.update(prob, 255 - frame)
    assert not stab.restarted
    stab.update(np.full((8, 8), 0.8, np.float32), 255 - frame)  # a new size
    assert stab.restarted


def test_the_motion_gates_channel_max_is_numpys():
    from personseg.video.stabilize import _channel_max

    x = np.random.default_rng(3).random((17, 23, 3), dtype=np.float32)
    assert np.array_equal(_channel_max(x), x.max(axis=2))
