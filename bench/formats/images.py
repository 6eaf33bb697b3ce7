"""Image files: RGB images, 16-bit depth PNGs and indexed (palette) label PNGs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from bench.errors import DataError


def read_rgb(path: Path) -> torch.Tensor:
    """An image file as float32 [3,H,W] RGB in [0,1]; unreadable -> DataError."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path} (missing or not an image)")
    return torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255


def read_depth_png(path: Path, scale: float) -> np.ndarray:
    """A 16-bit single-channel depth PNG divided by ``scale`` (metres) [H,W] float32."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read depth map {path} ({exc.strerror or exc})") from exc
    return decode_depth_png(data, f"depth map {path}", scale)


def decode_depth_png(data: bytes, where: str, scale: float,
                     error: type[Exception] = DataError) -> np.ndarray:
    """The bytes of a 16-bit single-channel PNG divided by ``scale`` (metres) [H,W] float32;
    anything else raises ``error`` naming ``where``."""
    import cv2

    depth = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if depth is None:
        raise error(f"{where} is not a readable PNG")
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise error(f"{where} is {depth.dtype} with shape {depth.shape}; expected a "
                    "single-channel 16-bit PNG (depth x scale)")
    return depth.astype(np.float32) / scale


def write_depth_png(path: Path, depth: np.ndarray, scale: float) -> None:
    """Write depth (metres, 0 = unknown) as a uint16 PNG of ``depth * scale``."""
    import cv2

    encoded = np.clip(np.rint(depth * scale), 0, 65535).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), encoded):
        raise DataError(f"cannot write {path}")


MAX_MASK_PIXELS = 100_000_000  # 12x DAVIS Full-Resolution (3840x2160)


def read_index_png(data: bytes | Path, name: str, error: type[Exception]) -> np.ndarray:
    """A palette ('P') or 8-bit grey ('L') PNG as its index array [H,W] uint8."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        width, height = image.size
        if width * height > MAX_MASK_PIXELS:
            raise error(f"mask {name} declares {width}x{height} pixels, over the "
                        f"{MAX_MASK_PIXELS // 10**6} million arbench decodes for one mask")
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise error(f"cannot read mask {name}: {exc}") from exc
    if image.mode not in ("P", "L"):
        raise error(f"mask {name} is a {image.mode} image; DAVIS masks are palette PNGs "
                    "(mode P) whose pixel values are object ids")
    return np.asarray(image, dtype=np.uint8)
