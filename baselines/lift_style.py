"""``lift-style`` and ``sift-learned-desc``: a LIFT-like learned pipeline (Yi et al., ECCV
2016) in torch, and its descriptor on SIFT's own keypoints and orientations.

``lift-style``: DoG candidates, a learned orientation estimator, an L2-Net/HardNet-like
descriptor CNN on rotation-normalised 32x32 patches, and a learned matchability score that
chooses which candidates fill the task's keypoint budget. ``arbench train lift-style``
extracts patch correspondences once from random homographies of scikit-image photographs
disjoint from the evaluation images (``lift_patches``) and trains on those tensors:
HardNet's hardest-in-batch triplet loss for the descriptor, a rotation-consistency loss for
the orientation estimator; then the matchability score on whether each described candidate
of further random views is matched correctly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from baselines import WEIGHTS_DIR
from baselines.lift_patches import (
    CONTEXT,
    PATCH,
    TRAIN_PHOTOS,
    VALIDATION_PHOTOS,
    PatchPairs,
    cut_patches,
    dog_detector,
    dog_keypoints,
    extract_patch_pairs,
    image_pyramid,
    patch_sides,
    random_view,
    standardise,
)
from baselines.matching import gray_uint8, keypoint_arrays, max_keypoints
from bench.errors import ModelError
from bench.families.base import Predictor
from bench.families.matching import per_image_predictor
from bench.metrics.matching import match_descriptors, match_errors, shared_masks
from bench.models import register_baseline

TRAIN_TASK = "matching-homography"
CONTRAST_THRESHOLD = 0.02
TRAIN_VIEWS = 16
VALIDATION_VIEWS = 12
BATCH = 512
EPOCHS = 10
ANGLE_JITTER = math.radians(8.0)
CANDIDATE_CONTRAST = 0.01
CANDIDATE_FACTOR = 4
MATCHABILITY_THRESHOLD = 0.3
MATCHABILITY_VIEWS = 8
MATCHABILITY_EPOCHS = 20
CORRECT_PX = 3.0


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=False)


class OrientationNet(nn.Module):
    """Upright 32x32 patch -> its orientation (rad, image coordinates)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1, bias=False), _bn(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), _bn(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1, bias=False), _bn(32), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 2),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """[N,1,32,32] standardised patches -> angles [N] in radians."""
        out = self.layers(patches)
        return torch.atan2(out[:, 1], out[:, 0])


class DescriptorNet(nn.Module):
    """L2-Net/HardNet-like CNN (a quarter of its width): rotation-normalised 32x32 patch ->
    128-D unit descriptor."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 5, 2, 2, bias=False), _bn(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), _bn(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False), _bn(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1, bias=False), _bn(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1, 1, bias=False), _bn(64), nn.ReLU(),
            nn.Conv2d(64, 128, 4, bias=False), _bn(128),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """[N,1,32,32] standardised patches -> [N,128], L2-normalised."""
        return F.normalize(self.layers(patches).flatten(1), dim=1)


class MatchabilityNet(nn.Module):
    """A keypoint's learned descriptor [N,128], DoG response [N] and size [N] (px) -> the
    logit [N] of its being matched correctly (Hartmann et al., "Predicting matchability",
    CVPR 2014, here a small MLP): the score that chooses which keypoints fill the budget."""

    def __init__(self) -> None:
        super().__init__()
        self.scalars = nn.BatchNorm1d(2, affine=False)
        self.layers = nn.Sequential(nn.Linear(130, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, descriptors: torch.Tensor, responses: torch.Tensor,
                sizes: torch.Tensor) -> torch.Tensor:
        """Logits [N] (sigmoid -> probability of a correct mutual-nearest-neighbour match)."""
        scalars = self.scalars(torch.stack([responses.log(), sizes.log()], dim=1))
        return self.layers(torch.cat([descriptors, scalars], dim=1)).squeeze(1)


class LiftStyle(nn.Module):
    """Orientation estimator + descriptor on patches cut from a grayscale image pyramid, and
    a matchability score of the described keypoints."""

    def __init__(self) -> None:
        super().__init__()
        self.orientation = OrientationNet()
        self.descriptor = DescriptorNet()
        self.matchability = MatchabilityNet()

    def orient(self, pyramid: list[torch.Tensor], points: torch.Tensor,
               sides: torch.Tensor) -> torch.Tensor:
        """Learned orientations [N] (rad) of keypoints [N,2] (px) with patch sides [N] (px)."""
        upright = cut_patches(pyramid, points, sides, torch.zeros_like(sides))
        return self.orientation(standardise(upright))

    def describe(self, pyramid: list[torch.Tensor], points: torch.Tensor, sides: torch.Tensor,
                 angles: torch.Tensor) -> torch.Tensor:
        """Descriptors [N,128] of patches at ``angles`` [N] (rad)."""
        return self.descriptor(standardise(cut_patches(pyramid, points, sides, angles)))


def candidate_detector(budget: int) -> cv2.SIFT:
    """DoG at ``CANDIDATE_CONTRAST``, asked for ``CANDIDATE_FACTOR`` x ``budget`` locations
    (plus SIFT's repeated orientations): the pool the matchability score chooses from."""
    return dog_detector(budget * CANDIDATE_FACTOR, CANDIDATE_CONTRAST)


def describe_candidates(model: LiftStyle, gray: np.ndarray, detector: cv2.SIFT, limit: int,
                        device: torch.device) -> dict[str, torch.Tensor]:
    """At most ``limit`` DoG keypoints of a uint8 [H,W] image (the strongest), their learned
    orientations and descriptors, and their matchability probabilities: ``keypoints`` [N,2]
    (px), ``sizes`` [N] (px), ``responses`` [N], ``descriptors`` [N,128], ``matchability`` [N]."""
    points, sizes, responses = dog_keypoints(gray, detector, limit)
    pyramid = image_pyramid(torch.from_numpy(gray).float().to(device))
    pts = torch.from_numpy(points).to(device)
    size = torch.from_numpy(sizes).to(device)
    response = torch.from_numpy(responses).to(device)
    sides = torch.from_numpy(patch_sides(sizes)).to(device)
    with torch.no_grad():
        descriptors = model.describe(pyramid, pts, sides, model.orient(pyramid, pts, sides))
        matchability = torch.sigmoid(model.matchability(descriptors, response, size))
    return {"keypoints": pts, "sizes": size, "responses": response,
            "descriptors": descriptors, "matchability": matchability}


def weights_path(task: str = TRAIN_TASK) -> Path:
    """Where lift-style weights trained for ``task`` live."""
    return WEIGHTS_DIR / f"lift-style.{task}.pt"


def load_lift_style(path: Path, device: torch.device) -> LiftStyle:
    """Load trained weights (``weights_only=True``) in eval mode."""
    if not path.is_file():
        raise ModelError(f"no trained weights for lift-style ({path} is missing)",
                         "train them with `arbench train lift-style`")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = LiftStyle()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in checkpoint["state_dict"].items()})
    return model.to(device).eval()


def _image_pyramid(image: torch.Tensor) -> tuple[np.ndarray, list[torch.Tensor]]:
    gray = gray_uint8(image)
    return gray, image_pyramid(torch.from_numpy(gray).float().to(image.device))


def lift_style_extractor(model: LiftStyle, budget: int
                         ) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """``extract(image [3,H,W]) -> keypoints, descriptors, scores``: DoG candidates with
    learned orientations and descriptors; those whose matchability reaches
    ``MATCHABILITY_THRESHOLD``, at most ``budget`` of them (the most matchable), scored by
    their matchability."""
    detector = candidate_detector(budget)

    def extract(image: torch.Tensor) -> dict[str, torch.Tensor]:
        found = describe_candidates(model, gray_uint8(image), detector,
                                    budget * CANDIDATE_FACTOR, image.device)
        score = found["matchability"]
        keep = torch.nonzero(score >= MATCHABILITY_THRESHOLD).squeeze(1)
        keep = keep[score[keep].argsort(descending=True, stable=True)[:budget]].sort().values
        return {"keypoints": found["keypoints"][keep],
                "descriptors": found["descriptors"][keep], "scores": score[keep]}

    return extract


@register_baseline("lift-style", "matching", weights=lambda task: [weights_path()],
                   default_task=TRAIN_TASK,
                   train=lambda spec, device, out=None, epochs=None, seed=0:
                   train_lift_style(spec, device, out, epochs, seed))
def build_lift_style(spec: Any, info: Any, device: torch.device) -> Predictor:
    """LIFT-style: DoG candidates, learned matchability, orientation and 128-D descriptor."""
    model = load_lift_style(weights_path(), device)
    return per_image_predictor(lift_style_extractor(model, max_keypoints(spec)))


@register_baseline("sift-learned-desc", "matching", weights=lambda task: [weights_path()])
def build_sift_learned_desc(spec: Any, info: Any, device: torch.device) -> Predictor:
    """SIFT's keypoints and orientations with lift-style's learned descriptor."""
    model = load_lift_style(weights_path(), device)
    sift = cv2.SIFT_create(nfeatures=max_keypoints(spec))

    def extract(image: torch.Tensor) -> dict[str, torch.Tensor]:
        gray, pyramid = _image_pyramid(image)
        points, sizes, angles, responses = keypoint_arrays(list(sift.detect(gray, None)))
        pts = torch.from_numpy(points).to(image.device)
        sides = torch.from_numpy(patch_sides(sizes)).to(image.device)
        theta = torch.from_numpy(np.deg2rad(angles)).to(image.device)
        with torch.no_grad():
            descriptors = model.describe(pyramid, pts, sides, theta)
        return {"keypoints": pts, "descriptors": descriptors,
                "scores": torch.from_numpy(responses).to(image.device)}

    return per_image_predictor(extract)


def rotated_crops(context: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Standardised 32x32 crops [N,1,32,32] of uint8 context patches [N,C,C] with their
    x axis along ``angles`` [N] (rad), the crop's side being PATCH/CONTEXT of the context's."""
    shrink = PATCH / CONTEXT
    cos, sin = torch.cos(angles) * shrink, torch.sin(angles) * shrink
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, [len(context), 1, PATCH, PATCH], align_corners=False)
    crops = F.grid_sample(context[:, None].float(), grid, mode="bilinear", align_corners=False)
    return standardise(crops)


def hardest_triplet_loss(desc_a: torch.Tensor, desc_b: torch.Tensor,
                         margin: float = 1.0) -> torch.Tensor:
    """HardNet loss (Mishchuk et al. 2017): each positive pair's distance against the
    hardest in-batch negative of either side, hinge with ``margin``."""
    dist = torch.cdist(desc_a, desc_b)
    positive = dist.diagonal()
    masked = dist + torch.eye(len(dist), device=dist.device) * 10.0
    negative = torch.minimum(masked.min(dim=1).values, masked.min(dim=0).values)
    return F.relu(margin + positive - negative).mean()


def angle_error(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Absolute angular difference (rad, in [0, pi]) of two angle tensors."""
    return torch.atan2(torch.sin(predicted - truth), torch.cos(predicted - truth)).abs()


def batch_losses(model: LiftStyle, pairs: PatchPairs, index: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triplet loss, orientation loss 1 - cos(error) and orientation errors [B] (rad) of
    the pairs at ``index``, with random crop rotations from ``generator``.

    Descriptor: A cropped at a random angle phi, B at phi + the true rotation + a jitter of
    ``ANGLE_JITTER`` (the orientation estimator's error to come). Orientation: A and B cropped
    at independent random angles alpha_a, alpha_b; the estimates in image coordinates,
    net(crop) + alpha, must differ by the true rotation.
    """
    n = len(index)
    a, b, rotation = pairs.a[index], pairs.b[index], pairs.rotation[index]

    def draw(scale: float, normal: bool = False) -> torch.Tensor:
        values = (torch.randn(n, generator=generator) if normal
                  else torch.rand(n, generator=generator) * 2 - 1)
        return (values * scale).to(rotation.device)

    phi, jitter = draw(math.pi), draw(ANGLE_JITTER, normal=True)
    desc_a = model.descriptor(rotated_crops(a, phi))
    desc_b = model.descriptor(rotated_crops(b, phi + rotation + jitter))
    alpha_a, alpha_b = draw(math.pi), draw(math.pi)
    theta_a = model.orientation(rotated_crops(a, alpha_a)) + alpha_a
    theta_b = model.orientation(rotated_crops(b, alpha_b)) + alpha_b
    difference = theta_b - theta_a - rotation
    return (hardest_triplet_loss(desc_a, desc_b), (1 - torch.cos(difference)).mean(),
            angle_error(theta_b - theta_a, rotation))


def validate(model: LiftStyle, pairs: PatchPairs, seed: int) -> dict[str, float]:
    """Validation triplet loss (mean over batches of ``BATCH``) and orientation error (deg)
    on fixed random crops of the validation pairs."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    triplets, errors = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), BATCH):
            index = torch.arange(start, min(start + BATCH, len(pairs)))
            triplet, _, error = batch_losses(model, pairs, index, generator)
            triplets.append(triplet.item())
            errors.append(error)
    model.train()
    degrees = torch.rad2deg(torch.cat(errors))
    return {"triplet": float(np.mean(triplets)), "orientation_mean_deg": degrees.mean().item(),
            "orientation_median_deg": degrees.median().item()}


@dataclass
class MatchabilitySamples:
    """Described DoG keypoints and whether each was matched correctly: ``descriptors``
    [N,128], ``responses`` [N], ``sizes`` [N] (px), ``correct`` [N] float 0/1."""

    descriptors: torch.Tensor
    responses: torch.Tensor
    sizes: torch.Tensor
    correct: torch.Tensor

    def inputs(self, index: torch.Tensor | slice = slice(None)) -> tuple[torch.Tensor, ...]:
        """The matchability network's inputs of the samples at ``index``."""
        return (self.descriptors[index], self.responses[index], self.sizes[index])

    def __len__(self) -> int:
        return len(self.correct)


def correct_match_labels(points_a: np.ndarray, desc_a: torch.Tensor, points_b: np.ndarray,
                         desc_b: torch.Tensor, homography: np.ndarray,
                         shape_a: tuple[int, int], shape_b: tuple[int, int]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of descriptors [Na,D], [Nb,D]; per keypoint of A and of B
    whether its match lies within ``CORRECT_PX`` of the truth (bool [Na], [Nb]) and whether
    it is seen by both images (bool [Na], [Nb]; only those can be matched correctly)."""
    matches = match_descriptors(desc_a, desc_b).cpu().numpy()
    errors = match_errors(points_a.astype(np.float64), points_b.astype(np.float64), matches,
                          homography)
    good = matches[errors <= CORRECT_PX]
    correct_a, correct_b = np.zeros(len(points_a), bool), np.zeros(len(points_b), bool)
    correct_a[good[:, 0]] = True
    correct_b[good[:, 1]] = True
    shared_a, shared_b = shared_masks(points_a.astype(np.float64),
                                      points_b.astype(np.float64), homography, shape_a, shape_b)
    return correct_a, correct_b, shared_a, shared_b


def matchability_samples(model: LiftStyle, photos: tuple[str, ...], views_per_photo: int,
                         seed: int, budget: int, device: torch.device) -> MatchabilitySamples:
    """Keypoints of random views of ``photos`` (half of them illumination-only), described
    by ``model`` and labelled by matching each view's two images with mutual nearest
    neighbours among all candidates; keypoints outside the shared region are left out."""
    from bench.synth.homography_pairs import EVAL_IMAGES, photograph

    if set(photos) & {*EVAL_IMAGES, "cat"}:
        raise ValueError(f"matchability photographs overlap the evaluation set: {photos}")
    rng = np.random.default_rng(seed)
    detector = candidate_detector(budget)
    parts: list[tuple[torch.Tensor, ...]] = []
    for name in photos:
        for _ in range(views_per_photo):
            photo = photograph(name, max_side=int(rng.choice([360, 480, 640])))
            gray_a, gray_b, homography = random_view(rng, photo, warp=bool(rng.uniform() < 0.5))
            a, b = (describe_candidates(model, gray, detector, budget * CANDIDATE_FACTOR, device)
                    for gray in (gray_a, gray_b))
            correct_a, correct_b, shared_a, shared_b = correct_match_labels(
                a["keypoints"].cpu().numpy(), a["descriptors"], b["keypoints"].cpu().numpy(),
                b["descriptors"], homography, gray_a.shape, gray_b.shape)
            for found, correct, shared in ((a, correct_a, shared_a), (b, correct_b, shared_b)):
                keep = torch.from_numpy(shared).to(device)
                parts.append((found["descriptors"][keep], found["responses"][keep],
                              found["sizes"][keep],
                              torch.from_numpy(correct[shared]).float().to(device)))
    return MatchabilitySamples(*(torch.cat(column) for column in zip(*parts, strict=True)))


def matchability_scores(model: LiftStyle, samples: MatchabilitySamples) -> dict[str, float]:
    """Binary cross-entropy and ROC AUC of the matchability score on ``samples``."""
    from sklearn.metrics import roc_auc_score

    model.eval()
    with torch.no_grad():
        logits = model.matchability(*samples.inputs())
        loss = F.binary_cross_entropy_with_logits(logits, samples.correct).item()
    return {"bce": loss, "auc": float(roc_auc_score(samples.correct.cpu().numpy(),
                                                    logits.cpu().numpy())),
            "positive_rate": samples.correct.mean().item()}


def train_matchability(model: LiftStyle, budget: int, device: torch.device,
                       seed: int = 0) -> dict[str, Any]:
    """Train ``model.matchability`` (orientation and descriptor fixed) on keypoints of
    ``MATCHABILITY_VIEWS`` random views per training photograph: binary cross-entropy,
    Adam, ``MATCHABILITY_EPOCHS`` epochs, batches of 1024. Returns the sample counts, the
    training and validation (validation photographs) losses and AUCs and the timings."""
    start = time.perf_counter()
    model.eval()
    train = matchability_samples(model, TRAIN_PHOTOS, MATCHABILITY_VIEWS, seed + 2, budget,
                                 device)
    held_out = matchability_samples(model, VALIDATION_PHOTOS, MATCHABILITY_VIEWS, seed + 3,
                                    budget, device)
    extraction_s = time.perf_counter() - start
    torch.manual_seed(seed)
    model.matchability = head = MatchabilityNet().to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    batch = 1024
    head.train()
    for _ in range(MATCHABILITY_EPOCHS):
        order = torch.randperm(len(train), generator=generator).to(device)
        for first in range(0, len(train) - batch + 1, batch):
            index = order[first:first + batch]
            logits = head(*train.inputs(index))
            loss = F.binary_cross_entropy_with_logits(logits, train.correct[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    report = {"train_keypoints": len(train), "validation_keypoints": len(held_out),
              "train": matchability_scores(model, train),
              "validation": matchability_scores(model, held_out),
              "extraction_s": extraction_s, "wall_s": time.perf_counter() - start}
    print(f"lift-style matchability: {len(train)} training, {len(held_out)} validation "
          f"keypoints; train BCE {report['train']['bce']:.3f} AUC {report['train']['auc']:.3f}, "
          f"validation BCE {report['validation']['bce']:.3f} "
          f"AUC {report['validation']['auc']:.3f} ({report['wall_s']:.0f}s)")
    return report


def _float16_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state on the CPU, floating-point tensors in float16 (the weights file)."""
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
            for k, v in model.state_dict().items()}


def train_lift_style(spec: Any, device: torch.device, out: Path | None = None,
                     epochs: int | None = None, seed: int = 0) -> Path:
    """Extract patch correspondences from ``TRAIN_PHOTOS`` and ``VALIDATION_PHOTOS`` (never
    the evaluation photographs), then train orientation and descriptor jointly for
    ``epochs`` passes (default ``EPOCHS``) over the training pairs, batches of ``BATCH``,
    Adam with a linearly decaying learning rate. Writes float16 weights with the recipe,
    losses, orientation error and timings; returns the weights path."""
    torch.manual_seed(seed)
    budget = max_keypoints(spec)
    detector = dog_detector(budget, CONTRAST_THRESHOLD)
    start = time.perf_counter()
    train = extract_patch_pairs(TRAIN_PHOTOS, TRAIN_VIEWS, seed, detector, budget)
    held_out = extract_patch_pairs(VALIDATION_PHOTOS, VALIDATION_VIEWS, seed + 1, detector,
                                   budget)
    extraction_s = time.perf_counter() - start
    print(f"lift-style: {len(train)} training pairs from {len(TRAIN_PHOTOS)} photographs, "
          f"{len(held_out)} validation pairs from {len(VALIDATION_PHOTOS)} "
          f"({extraction_s:.0f}s)")
    model = LiftStyle().to(device).train()
    per_epoch = len(train) // BATCH
    steps = per_epoch * (epochs or EPOCHS)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    generator = torch.Generator().manual_seed(seed)
    train = PatchPairs(train.a.to(device), train.b.to(device), train.rotation.to(device))
    held_out = PatchPairs(held_out.a.to(device), held_out.b.to(device),
                          held_out.rotation.to(device))
    running: list[float] = []
    history = []
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(train), generator=generator)
        index = order[(step % per_epoch) * BATCH:(step % per_epoch + 1) * BATCH].to(device)
        triplet, orientation, _ = batch_losses(model, train, index, generator)
        optimizer.zero_grad()
        (triplet + orientation).backward()
        optimizer.step()
        schedule.step()
        losses = [triplet.item(), orientation.item()]
        running = [0.95 * old + 0.05 * new for old, new in zip(running or losses, losses,
                                                               strict=True)]
        if (step + 1) % per_epoch == 0 or step + 1 == steps:
            scores = validate(model, held_out, seed)
            history.append({"step": step + 1, "train_triplet": running[0],
                            "train_orientation": running[1], **scores})
            print(f"lift-style step {step + 1}/{steps}: train triplet {running[0]:.3f}, "
                  f"orientation {running[1]:.3f}; validation triplet {scores['triplet']:.3f}, "
                  f"orientation error {scores['orientation_mean_deg']:.1f} deg mean, "
                  f"{scores['orientation_median_deg']:.1f} median "
                  f"({time.perf_counter() - start:.0f}s)")
    # The score learns from the descriptor as it is saved (float16).
    model.load_state_dict({k: v.float() for k, v in _float16_state(model).items()})
    matchability = train_matchability(model, budget, device, seed)
    wall_s = time.perf_counter() - start
    path = out or weights_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _float16_state(model)
    torch.save({"state_dict": state, "train_photos": list(TRAIN_PHOTOS),
                "validation_photos": list(VALIDATION_PHOTOS), "seed": seed, "steps": steps,
                "batch": BATCH, "train_pairs": len(train), "validation_pairs": len(held_out),
                "contrast_threshold": CONTRAST_THRESHOLD, "history": history,
                "matchability": matchability,
                "extraction_s": extraction_s, "wall_s": wall_s}, path)
    print(f"trained lift-style in {wall_s:.0f}s on {device} ({extraction_s:.0f}s extraction)")
    return path


def retrain_matchability(path: Path, spec: Any, device: torch.device, seed: int = 0) -> None:
    """Train the matchability score of the weights at ``path`` again (the last stage of
    ``train_lift_style``; orientation and descriptor unchanged) and rewrite the file."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = LiftStyle()
    fixed = {k: v.float() if v.is_floating_point() else v
             for k, v in checkpoint["state_dict"].items() if not k.startswith("matchability.")}
    missing = model.load_state_dict(fixed, strict=False).missing_keys
    if any(not key.startswith("matchability.") for key in missing):
        raise ModelError(f"{path} is not a lift-style weights file",
                         f"missing {', '.join(missing[:3])}")
    model = model.to(device)
    checkpoint["matchability"] = train_matchability(model, max_keypoints(spec), device, seed)
    checkpoint["state_dict"] = _float16_state(model)
    torch.save(checkpoint, path)
