"""Embedded ``synthetic-retrieval``: landmarks cut from scikit-image's photographs, seen
through random viewpoint homographies and photometric changes, in the revisitop layout.

Each landmark is a square region of a photograph. Its queries are near-frontal views
(with the landmark's box, ``bbx``, as revisitop's queries have); its database views are
``easy`` (mild homography and lighting), ``hard`` (strong perspective, scale, rotation,
lighting, blur and an occluder) and ``junk`` (only a sliver of the landmark in view).
Distractors are views of the same photographs' other corners and of textures. Written
as ``jpg/<name>.jpg`` and ``gnd_synthetic-retrieval.pkl`` (``imlist``, ``qimlist``,
``gnd``), read by the ``revisitop`` adapter. A disjoint training set (landmarks from
other photographs) goes to ``train/`` in the same layout, for the baselines' vocabulary
and network.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from bench.registry import EMBEDDED

NAME = "synthetic-retrieval"
SIZE = 192
SEED = 0
VIEWS = {"query": 2, "easy": 4, "hard": 3, "junk": 2}
TEST_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
               "immunohistochemistry", "motorcycle")
TEST_DISTRACTORS = ("grass", "gravel", "brick", "retina", "colorwheel")
TRAIN_PHOTOS = ("camera", "clock", "coins", "moon", "cell", "shepp_logan_phantom")
TRAIN_DISTRACTORS = ("page", "text")


def photo(name: str) -> np.ndarray:
    """A scikit-image sample image as RGB uint8 [H, W, 3] (grey images tinted by ``tint``)."""
    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(
        skimage.data, name)()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image * 255.0 if image.max() <= 1.0 else image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def tint(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey image coloured by a random per-channel gain (keeps structure, adds colour)."""
    gains = rng.uniform(0.4, 1.2, size=3)
    return np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def landmark_regions(image: np.ndarray) -> list[tuple[float, float, float]]:
    """Two non-overlapping squares (x0, y0, side) in the top-left and bottom-right areas."""
    h, w = image.shape[:2]
    side = 0.42 * min(h, w)
    margin = 0.04 * min(h, w)
    return [(margin, margin, side), (w - margin - side, h - margin - side, side)]


def view(image: np.ndarray, region: tuple[float, float, float], kind: str,
         rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """A SIZE x SIZE view of ``region`` of ``image``; returns (RGB uint8, landmark box)."""
    x0, y0, side = region
    src = np.float32([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]])
    params = {  # scale of the landmark in the view, corner jitter, rotation (deg)
        "query": (0.72, 0.02, 3.0), "easy": (rng.uniform(0.6, 0.85), 0.05, 10.0),
        "hard": (rng.uniform(0.4, 1.0), 0.14, 30.0), "junk": (rng.uniform(1.9, 2.4), 0.05, 10.0),
        "distractor": (rng.uniform(0.5, 1.0), 0.1, 20.0),
    }[kind]
    scale, jitter, rotation = params
    half = scale * SIZE / 2
    centre = np.array([SIZE / 2, SIZE / 2]) + rng.uniform(-0.08, 0.08, 2) * SIZE
    if kind == "junk":  # push the landmark so that only a corner of it stays in view
        centre = centre + rng.choice([-1.0, 1.0], 2) * half * 0.95
    angle = np.radians(rng.uniform(-rotation, rotation))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    dst = corners @ rot.T + centre + rng.uniform(-jitter, jitter, (4, 2)) * SIZE
    homography = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    out = cv2.warpPerspective(image, homography, (SIZE, SIZE), flags=cv2.INTER_AREA,
                              borderMode=cv2.BORDER_REFLECT)
    out = photometric(out, kind, rng)
    box = [float(max(0.0, dst[:, 0].min())), float(max(0.0, dst[:, 1].min())),
           float(min(SIZE, dst[:, 0].max())), float(min(SIZE, dst[:, 1].max()))]
    return out, box


def photometric(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Gain, gamma, colour cast, blur, noise and (hard views) an occluding rectangle."""
    strong = kind == "hard"
    x = image.astype(np.float32) / 255.0
    if kind != "query":
        x = x ** rng.uniform(0.6, 1.6) if strong else x ** rng.uniform(0.85, 1.2)
        x = x * rng.uniform(0.6, 1.3 if strong else 1.1) * rng.uniform(0.85, 1.15, 3)
    if strong:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
        h = int(SIZE * rng.uniform(0.25, 0.4))
        w = int(SIZE * rng.uniform(0.25, 0.4))
        top, left = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
        x[top:top + h, left:left + w] = rng.uniform(0, 1, 3)
    x = x + rng.normal(0, 0.02 if strong else 0.01, x.shape)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def write_set(root: Path, photos: tuple[str, ...], distractor_photos: tuple[str, ...],
              n_distractors: int, rng: np.random.Generator) -> None:
    """Write one revisitop-layout set (jpg/ and gnd_synthetic-retrieval.pkl) into root."""
    (root / "jpg").mkdir(parents=True)
    db: list[tuple[str, np.ndarray]] = []
    queries: list[tuple[str, np.ndarray]] = []
    gnd: list[dict] = []
    for name in photos:
        image = photo(name)
        if image.std(axis=2).mean() < 1.0:
            image = tint(image, rng)
        for r, region in enumerate(landmark_regions(image)):
            tag = f"{name}_{r}"
            lists: dict[str, list[int]] = {"easy": [], "hard": [], "junk": []}
            for kind in ("easy", "hard", "junk"):
                for v in range(VIEWS[kind]):
                    lists[kind].append(len(db))
                    db.append((f"{tag}_{kind}{v}", view(image, region, kind, rng)[0]))
            for v in range(VIEWS["query"]):
                pixels, box = view(image, region, "query", rng)
                queries.append((f"{tag}_query{v}", pixels))
                gnd.append({"bbx": box, **lists})
    for name in photos:  # the photographs' other two corners: same look, other content
        image = photo(name)
        h, w = image.shape[:2]
        for (x0, y0, side) in landmark_regions(image):
            region = (w - x0 - side, y0, side)
            for v in range(2):
                db.append((f"{name}_other{int(x0 > w / 2)}_{v}",
                           view(image, region, "distractor", rng)[0]))
    sources = [tint(photo(n), rng) if photo(n).std(axis=2).mean() < 1.0 else photo(n)
               for n in distractor_photos]
    for d in range(n_distractors):
        image = sources[d % len(sources)]
        h, w = image.shape[:2]
        side = rng.uniform(0.3, 0.6) * min(h, w)
        region = (rng.uniform(0, w - side), rng.uniform(0, h - side), side)
        db.append((f"distractor{d:03d}", view(image, region, "distractor", rng)[0]))
    order = rng.permutation(len(db))  # shuffle the database so positives are not contiguous
    new_index = np.empty(len(db), dtype=np.int64)
    new_index[order] = np.arange(len(db))
    for item in gnd:
        for key in ("easy", "hard", "junk"):
            item[key] = sorted(int(new_index[i]) for i in item[key])
    db = [db[i] for i in order]
    for name, pixels in db + queries:
        cv2.imwrite(str(root / "jpg" / f"{name}.jpg"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
    cfg = {"imlist": [n for n, _ in db], "qimlist": [n for n, _ in queries], "gnd": gnd}
    with open(root / f"gnd_{NAME}.pkl", "wb") as handle:
        pickle.dump(cfg, handle, protocol=4)


@EMBEDDED.register(NAME)
def build_synthetic_retrieval(root: Path) -> None:
    """scikit-image photo landmarks under homographies, revisitop layout (28 q / 196 db)."""
    rng = np.random.default_rng(SEED)
    write_set(root, TEST_PHOTOS, TEST_DISTRACTORS, 42, rng)
    write_set(root / "train", TRAIN_PHOTOS, TRAIN_DISTRACTORS, 16, rng)
