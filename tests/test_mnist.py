"""The MNIST IDX adapter on small files written in the real format, and the digits set."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters.base import MANIFEST, ensure_embedded
from bench.adapters.mnist import MnistDataset
from bench.errors import DataError
from bench.formats.idx import read_idx
from bench.synth.digits import digits_28x28, write_idx


def write_mnist(root: Path, n: int = 5, prefix: str = "t10k", gz: bool = False) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    images = np.arange(n * 28 * 28, dtype=np.int64).reshape(n, 28, 28) % 256
    labels = np.arange(n) % 10
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        path = root / f"{prefix}-{kind}-ubyte"
        write_idx(path, array)
        if gz:
            Path(str(path) + ".gz").write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
    return images


@pytest.mark.parametrize("gz", [False, True])
def test_reads_idx_files(tmp_path: Path, gz: bool) -> None:
    images = write_mnist(tmp_path, gz=gz)
    dataset = MnistDataset(tmp_path, "test")
    assert len(dataset) == 5
    sample = dataset[3]
    assert sample["id"] == "test/00003" and sample["label"] == 3
    assert sample["image"].shape == (1, 28, 28) and sample["image"].dtype == torch.float32
    assert sample["image"][0, 0, 1] == pytest.approx(images[3, 0, 1] / 255.0)
    assert dataset.info.meta["num_classes"] == 10
    assert len(dataset.info.fingerprint) == 16


def test_torchvision_layout(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw", prefix="train")
    assert len(MnistDataset(tmp_path, "train")) == 5


def test_header_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "x-ubyte"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([1, 2, 3]))
    np.testing.assert_array_equal(read_idx(path, 1), [1, 2, 3])
    with pytest.raises(DataError, match="has 1 dimensions, expected 3"):
        read_idx(path, 3)
    path.write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(DataError, match="bad magic number 12340801"):
        read_idx(path, 1)


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte holds 3910 bytes of data, its "
                                        "header says 3920"):
        MnistDataset(tmp_path, "test")


def test_count_mismatch(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        MnistDataset(tmp_path, "test")


def test_missing_data_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        MnistDataset(tmp_path / "nowhere", "test")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert "arbench data get mnist" in str(info.value)
    write_mnist(tmp_path, prefix="train")
    with pytest.raises(DataError, match="no t10k-images-idx3-ubyte"):
        MnistDataset(tmp_path, "test")


def test_digits_are_centred_28x28() -> None:
    images, labels = digits_28x28()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8
    assert images[:, :4].max() == 0 and images[:, 24:].max() == 0
    assert set(np.unique(labels)) == set(range(10))


def test_embedded_digits_build_is_complete_and_deterministic(tmp_path: Path) -> None:
    first = ensure_embedded("digits", tmp_path / "a")
    second = ensure_embedded("digits", tmp_path / "b")
    assert (first / MANIFEST).read_text() == (second / MANIFEST).read_text()
    test_set = MnistDataset(first, "test")
    train_set = MnistDataset(first, "train")
    assert (len(train_set), len(test_set)) == (1437, 360)
    assert all(35 <= count <= 37 for count in torch.bincount(test_set.labels).tolist())
    assert test_set.info.fingerprint == MnistDataset(second, "test").info.fingerprint
    assert not list(tmp_path.glob(".a-*"))


def test_download_verifies_checksums(tmp_path: Path, monkeypatch) -> None:
    import hashlib
    import io

    from bench.adapters import mnist

    payloads = {name: f"payload {name}".encode() for name in mnist.MNIST_MD5}
    monkeypatch.setattr(mnist, "MNIST_MD5", {
        name: hashlib.md5(data).hexdigest() for name, data in payloads.items()})
    monkeypatch.setattr(mnist.urllib.request, "urlopen",
                        lambda url, timeout: io.BytesIO(payloads[url.rsplit("/", 1)[1]]))
    files = mnist.download_mnist(tmp_path)
    assert sorted(p.name for p in files) == sorted(payloads)
    payloads["t10k-images-idx3-ubyte.gz"] = b"tampered"
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="checksum mismatch for t10k-images-idx3-ubyte.gz"):
        mnist.download_mnist(tmp_path)
    assert not (tmp_path / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(tmp_path.glob("*.part"))
