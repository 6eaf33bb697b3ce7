"""A procedural articulated hand: a 21-joint kinematic chain in FreiHAND's keypoint order,
anthropometric bone lengths, per-finger flexion and abduction inside joint limits, and a
mesh of capsules (Open3D cylinders and spheres) around its bones.

Hand frame (metres): origin at the wrist, +y towards the fingers, +x towards the thumb,
+z out of the palm (a finger flexes towards +z). Keypoint order (FreiHAND): 0 wrist, then
thumb, index, middle, ring, little, each with 4 keypoints from base to tip.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import open3d as o3d

# Base joint (thumb CMC, finger MCP) positions relative to the wrist, metres, for an adult
# hand of scale 1 (middle finger MCP-to-tip 9.7 cm, wrist-to-middle-MCP 9 cm).
BASE_POSITIONS = np.array([
    [0.022, 0.030, 0.010],
    [0.026, 0.086, 0.000],
    [0.006, 0.090, 0.000],
    [-0.013, 0.085, 0.000],
    [-0.031, 0.076, 0.000],
])
# Phalanx lengths (base->second joint, second->third, third->tip), metres.
PHALANGES = np.array([
    [0.042, 0.032, 0.028],
    [0.041, 0.025, 0.021],
    [0.045, 0.028, 0.024],
    [0.042, 0.027, 0.023],
    [0.033, 0.020, 0.020],
])
# Rest direction of each finger's first bone (hand frame), before abduction/flexion.
REST_DIRECTIONS = np.array([
    [0.70, 0.70, 0.15],
    [0.12, 1.0, 0.0],
    [0.0, 1.0, 0.0],
    [-0.10, 1.0, 0.0],
    [-0.22, 1.0, 0.0],
])
# Joint limits in degrees: abduction at the base, flexion at the 3 joints of each finger.
ABDUCTION_LIMITS = np.array([[-15.0, 35.0], [-15.0, 15.0], [-10.0, 10.0], [-10.0, 12.0],
                             [-12.0, 20.0]])
FLEXION_LIMITS = np.array([
    [[-10.0, 45.0], [0.0, 55.0], [-10.0, 80.0]],
    [[-20.0, 90.0], [0.0, 105.0], [0.0, 80.0]],
    [[-20.0, 90.0], [0.0, 105.0], [0.0, 80.0]],
    [[-20.0, 90.0], [0.0, 105.0], [0.0, 80.0]],
    [[-20.0, 90.0], [0.0, 105.0], [0.0, 80.0]],
])
# Capsule radii (metres) of each finger's phalanges, and of the palm and forearm.
FINGER_RADII = np.array([0.0105, 0.0085, 0.0088, 0.0083, 0.0072])
PALM_RADIUS = 0.013
FOREARM = (0.07, 0.024)


@dataclass
class HandPose:
    """Articulation of one hand: scale, abduction [5] and flexion [5,3] in degrees."""

    scale: float
    abduction: np.ndarray
    flexion: np.ndarray


def _axis_rotation(axis: int, angle_deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


def _finger_frame(direction: np.ndarray) -> np.ndarray:
    """Columns (lateral, along, palmar) of a finger whose first bone points along ``direction``."""
    along = direction / np.linalg.norm(direction)
    palmar = np.array([0.0, 0.0, 1.0]) - along[2] * along
    palmar /= np.linalg.norm(palmar)
    lateral = np.cross(along, palmar)
    return np.stack([lateral, along, palmar], axis=1)


def random_pose(rng: np.random.Generator, scale_range: tuple[float, float] = (0.85, 1.15)
                ) -> HandPose:
    """A random articulation inside the joint limits; fingers flex together loosely."""
    grip = rng.uniform(0.0, 1.0)
    flexion = np.empty((5, 3))
    for finger in range(5):
        amount = np.clip(grip + rng.normal(0.0, 0.3), 0.0, 1.0)
        for joint in range(3):
            low, high = FLEXION_LIMITS[finger, joint]
            share = np.clip(amount + rng.normal(0.0, 0.12), 0.0, 1.0)
            flexion[finger, joint] = low + share * (high - low)
    abduction = rng.uniform(ABDUCTION_LIMITS[:, 0], ABDUCTION_LIMITS[:, 1]) * (1.0 - 0.6 * grip)
    return HandPose(float(rng.uniform(*scale_range)), abduction, flexion)


def forward_kinematics(pose: HandPose) -> np.ndarray:
    """Keypoints [21,3] in the hand frame (metres) for an articulation."""
    flexion = np.clip(pose.flexion, FLEXION_LIMITS[..., 0], FLEXION_LIMITS[..., 1])
    abduction = np.clip(pose.abduction, ABDUCTION_LIMITS[:, 0], ABDUCTION_LIMITS[:, 1])
    keypoints = np.zeros((21, 3))
    for finger in range(5):
        base = BASE_POSITIONS[finger] * pose.scale
        frame = _finger_frame(REST_DIRECTIONS[finger]) @ _axis_rotation(2, -abduction[finger])
        keypoints[1 + 4 * finger] = base
        position = base
        for joint in range(3):
            frame = frame @ _axis_rotation(0, flexion[finger, joint])
            position = position + frame[:, 1] * PHALANGES[finger, joint] * pose.scale
            keypoints[2 + 4 * finger + joint] = position
    return keypoints


def _capsule(start: np.ndarray, end: np.ndarray, radius: float,
             resolution: int = 10) -> o3d.geometry.TriangleMesh:
    """A cylinder of ``radius`` from ``start`` to ``end`` (spheres close it elsewhere)."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    cylinder = o3d.geometry.TriangleMesh.create_cylinder(radius, max(length, 1e-4), resolution, 1)
    z = axis / max(length, 1e-9)
    # x = helper x z and y = z x x, with helper the x or y axis (written out: np.cross is slow).
    x = np.array([0.0, -z[2], z[1]]) if abs(z[0]) < 0.9 else np.array([z[2], 0.0, -z[0]])
    x /= np.linalg.norm(x)
    y = np.array([z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]])
    rotation = np.stack([x, y, z], axis=1)
    cylinder.rotate(rotation, center=(0.0, 0.0, 0.0))
    cylinder.translate((start + end) / 2.0)
    return cylinder


def _sphere(centre: np.ndarray, radius: float, resolution: int = 6) -> o3d.geometry.TriangleMesh:
    sphere = o3d.geometry.TriangleMesh.create_sphere(radius, resolution)
    sphere.translate(centre)
    return sphere


def hand_mesh(keypoints: np.ndarray, scale: float = 1.0) -> o3d.geometry.TriangleMesh:
    """Capsules around the 15 phalanges, a palm of thick capsules and a forearm stub.

    ``keypoints`` [21,3] are in the hand frame; the mesh is in the same frame (metres).
    """
    parts = []
    for finger in range(5):
        radius = FINGER_RADII[finger] * scale
        chain = keypoints[1 + 4 * finger: 5 + 4 * finger]
        for joint in range(3):
            parts.append(_capsule(chain[joint], chain[joint + 1], radius * (1 - 0.08 * joint)))
        for joint in range(4):
            parts.append(_sphere(chain[joint], radius * (1 - 0.08 * max(joint - 1, 0))))
    palm_radius = PALM_RADIUS * scale
    wrist = keypoints[0]
    bases = keypoints[[1, 5, 9, 13, 17]]
    for base in bases:
        parts.append(_capsule(wrist, base, palm_radius))
    for left, right in pairwise(bases[1:]):
        parts.append(_capsule(left, right, palm_radius))
    parts.append(_capsule(bases[1], bases[0], palm_radius))
    centre = wrist + 0.55 * (bases[2] - wrist)
    for base in bases[1:]:
        parts.append(_capsule(centre, base, palm_radius))
    parts.append(_sphere(wrist, palm_radius * 1.5))
    length, radius = FOREARM
    parts.append(_capsule(wrist, wrist - np.array([0.0, length * scale, 0.0]), radius * scale))
    mesh = parts[0]
    for part in parts[1:]:
        mesh += part
    return mesh
