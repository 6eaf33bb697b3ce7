"""Hostile and clumsy input through the command line: every failure a user can cause is one
line on stderr (``arbench: error: ...``), exit code 2, no traceback, and leaves the results
folder and the leaderboards as they were. Hostile files are refused before they allocate.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main

BOARD = b"run_id,timestamp,model\nr1,2026-01-01T00:00:00,kept\n"


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def write_spec(tmp: Path, text: bytes | str) -> str:
    path = tmp / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def idx_labels(tmp: Path, labels: np.ndarray, dtype_code: int, dtype: str) -> str:
    """A digits-shaped MNIST root whose label file holds ``labels`` in the given IDX type."""
    root = tmp / "mnist"
    root.mkdir()
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    (root / "t10k-images-idx3-ubyte").write_bytes(
        struct.pack(">BBBB3I", 0, 0, 0x08, 3, len(labels), 28, 28) + images.tobytes())
    (root / "t10k-labels-idx1-ubyte").write_bytes(
        struct.pack(">BBBBI", 0, 0, dtype_code, 1, len(labels))
        + np.asarray(labels, dtype=dtype).tobytes())
    return str(root)


def raising_model(tmp: Path) -> str:
    (tmp / "flaky_model.py").write_text(
        "import torch\n"
        "calls = 0\n"
        "def predict(batch):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls == 2:\n"
        "        raise RuntimeError('out of cheese')\n"
        "    return torch.zeros(len(batch['id']), 10)\n")
    sys.modules.pop("flaky_model", None)
    return "flaky_model:predict"


def corrupt_torchscript(tmp: Path) -> str:
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    path = tmp / "net.ts"
    scripted.save(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def predictions_npz(tmp: Path, **arrays) -> str:
    path = tmp / "preds.npz"
    np.savez(path, **arrays)
    return str(path)


def truncated_npz(tmp: Path) -> str:
    path = Path(predictions_npz(tmp, ids=np.array(["test/00000"]), logits=np.zeros((1, 10))))
    path.write_bytes(path.read_bytes()[:-40])
    return str(path)


def npz_declaring(tmp: Path, shape: tuple[int, ...], zeros: int = 1000) -> str:
    """preds.npz with real ids and a deflated ``logits`` member whose .npy header declares
    ``shape`` float32, followed by ``zeros`` bytes of data."""
    import zipfile

    path = Path(predictions_npz(tmp, ids=np.array(["test/00000"])))
    with (zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive,
          archive.open("logits.npy", "w", force_zip64=True) as member):
        np.lib.format.write_array_header_1_0(
            member, {"descr": "<f4", "fortran_order": False, "shape": shape})
        for start in range(0, zeros, 16 << 20):
            member.write(bytes(min(16 << 20, zeros - start)))
    return str(path)


def huge_csv_field(tmp: Path) -> str:
    path = tmp / "preds.csv"
    path.write_text("id," + ",".join(f"logit_{c}" for c in range(10)) + "\n"
                    + "x" * 200_000 + ",0,0,0,0,0,0,0,0,0,0\n")
    return str(path)


def escaping_file_list(tmp: Path) -> str:
    root = tmp / "nyu"
    root.mkdir()
    (tmp / "outside.jpg").write_bytes(b"not yours")
    (root / "nyudepthv2_test_files_with_gt.txt").write_text(
        "kitchen/rgb_00001.jpg kitchen/sync_depth_00001.png 518.8579\n"
        "../../outside.jpg kitchen/sync_depth_00002.png 518.8579\n")
    return str(root)


def nested_json(tmp: Path) -> str:
    path = tmp / "pred.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    return str(path)


def pickled_module(tmp: Path) -> str:
    path = tmp / "whole.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    return str(path)


def wide_state_dict(tmp: Path) -> str:
    """A state_dict with tiny_cnn's keys but a wider first layer (shapes do not fit)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(64, 10))
    path = tmp / "wide.pt"
    torch.save(net.state_dict(), path)
    (tmp / "arch_factories.py").write_text(
        "import torch\n"
        "def tiny():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),\n"
        "        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(32, 10))\n"
        "def broken():\n"
        "    raise ValueError('no such width')\n")
    sys.modules.pop("arch_factories", None)
    return str(path)


RUN = ["run", "digits", "--limit", "4"]
# (case id, argv builder given the temporary folder, text the error line must contain)
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("empty spec", lambda t: ["validate", write_spec(t, ""), "--no-smoke"],
     "the file is empty; a task spec"),
    ("recursive alias", lambda t: ["validate", write_spec(t, "a: &a [*a]\n"), "--no-smoke"],
     "refers to itself"),
    ("date scalar", lambda t: ["validate", write_spec(t, "task: x\nversion: 2020-01-01\n"),
                               "--no-smoke"], "version: Input should be a valid integer"),
    ("non-UTF-8 spec", lambda t: ["validate", write_spec(t, b"task: \xff\xfe\n"), "--no-smoke"],
     "not UTF-8"),
    ("malformed YAML", lambda t: ["validate", write_spec(t, "task: [unclosed\n"), "--no-smoke"],
     "malformed YAML"),
    ("unknown key", lambda t: ["validate", write_spec(t, "task: x\ncolour: red\n"),
                               "--no-smoke"], "colour: unknown key"),
    ("python tag", lambda t: ["validate", write_spec(
        t, "task: !!python/object/apply:os.system ['touch pwned']\n"), "--no-smoke"],
     "malformed YAML"),
    ("pickled module without trust", lambda t: [*RUN, "--model", pickled_module(t)],
     "refusing to unpickle"),
    ("NaN predictions", lambda t: [*RUN, "--predictions", predictions_npz(
        t, ids=np.array([f"test/{i:05d}" for i in range(4)]),
        logits=np.full((4, 10), np.nan))], "NaN"),
    ("batch size 0", lambda t: [*RUN, "--set", "protocol.batch_size=0", "--model", "logreg"],
     "protocol.batch_size must be a whole number"),
    ("batch size abc", lambda t: [*RUN, "--set", "protocol.batch_size=abc", "--model", "logreg"],
     "got 'abc'"),
    ("--batch-size 0", lambda t: [*RUN, "--batch-size", "0", "--model", "logreg"],
     "--batch-size must be"),
    ("--workers -1", lambda t: [*RUN, "--workers", "-1", "--model", "logreg"],
     "--workers must be 0 or more"),
    ("--device bogus", lambda t: [*RUN, "--device", "bogus", "--model", "logreg"],
     "unknown device 'bogus'"),
    ("--seed -1", lambda t: [*RUN, "--seed", "-1", "--model", "logreg"], "--seed must be"),
    ("state_dict of other shapes", lambda t: [*RUN, "--model", wide_state_dict(t), "--arch",
                                              "arch_factories:tiny"],
     "other shapes ['0.weight (4, 1, 3, 3) vs (2, 1, 3, 3)'"),
    ("--arch factory raises", lambda t: [*RUN, "--model", wide_state_dict(t), "--arch",
                                         "arch_factories:broken"],
     "--arch arch_factories:broken raised ValueError: no such width"),
    ("random bytes, trusted", lambda t: [*RUN, "--model", str(_bytes(t, "x.pt")),
                                         "--trust-checkpoint"], "not a PyTorch checkpoint"),
    ("corrupt TorchScript", lambda t: [*RUN, "--model", corrupt_torchscript(t)], "net.ts"),
    ("model raises mid-run", lambda t: ["run", "digits", "--limit", "8", "--batch-size", "4",
                                        "--model", raising_model(t)],
     "model 'flaky_model:predict' failed on task 'digits', batch 2"),
    ("truncated npz", lambda t: [*RUN, "--predictions", truncated_npz(t)], "preds.npz"),
    ("object array npz", lambda t: [*RUN, "--predictions", predictions_npz(
        t, ids=np.array(["test/00000", 1], dtype=object), logits=np.zeros((2, 10)))],
     "preds.npz"),
    ("npz member declaring 37 GiB", lambda t: [*RUN, "--predictions", npz_declaring(
        t, (100_000, 100_000))], "preds.npz: cannot read array 'logits': its header declares"),
    ("CSV field over the limit", lambda t: [*RUN, "--predictions", huge_csv_field(t)],
     "preds.csv"),
    ("duplicate ids", lambda t: [*RUN, "--predictions", predictions_npz(
        t, ids=np.array(["test/00000", "test/00000"]), logits=np.zeros((2, 10)))],
     "two predictions for sample 'test/00000'"),
    ("--name too long", lambda t: [*RUN, "--model", "logreg", "--name", "n" * 300],
     "cannot create the result folder"),
    ("NaN IDX labels", lambda t: ["run", "mnist", "--model", "logreg", "--set", "dataset.root="
                                  + idx_labels(t, np.array([1.0, np.nan]), 0x0D, ">f4")],
     "label nan of sample 1 is not a class 0..9"),
    ("negative IDX labels", lambda t: ["run", "mnist", "--model", "logreg", "--set",
                                       "dataset.root="
                                       + idx_labels(t, np.array([1, -3]), 0x09, "i1")],
     "label -3 of sample 1 is not a class 0..9"),
    ("file list leaving the root", lambda t: ["run", "nyu-depth", "--model", "constant-median",
                                              "--set", f"dataset.root={escaping_file_list(t)}"],
     "nyudepthv2_test_files_with_gt.txt:2: '../../outside.jpg' leads outside the data root"),
    ("deeply nested JSON", lambda t: ["run", "synthetic-hands", "--limit", "2",
                                      "--predictions", nested_json(t)], "nested too deeply"),
    ("table of an empty CSV", lambda t: ["table", str(_bytes(t, "e.csv", b""))], "is empty"),
    ("table of a binary file", lambda t: ["table", str(_bytes(t, "b.csv", b"\x00\xff\xfe\x01"))],
     "not a UTF-8 CSV"),
    ("table of a column-less CSV", lambda t: ["table", str(_bytes(t, "c.csv", b"a,b\n1,2\n"))],
     "not an arbench leaderboard"),
    ("table of a badly quoted CSV", lambda t: ["table", str(_bytes(
        t, "q.csv", b'run_id,model\n"r1,"a"b\n'))], "q.csv"),
]


def _bytes(tmp: Path, name: str, data: bytes = b"\x13\x37garbage bytes") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_every_user_error_is_one_clean_line(case: str, argv: Callable[[Path], list[str]],
                                            expected: str, tmp_path: Path, capsys,
                                            monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    boards, results = tmp_path / "boards", tmp_path / "results"
    boards.mkdir()
    (boards / "digits.csv").write_bytes(BOARD)
    (boards / "mnist.csv").write_bytes(BOARD)
    args = argv(tmp_path)
    if args[0] in ("run", "table"):
        args += ["--leaderboard-dir", str(boards)]
    if args[0] == "run":
        args += ["--out", str(results)]
    before = snapshot(boards)
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert lines[-1].startswith("arbench:"), err
    assert expected in err, err
    if args[0] != "validate":
        assert len(lines) == 1, err
    assert snapshot(boards) == before
    assert not results.exists() or not any(p.is_file() for p in results.rglob("*"))


def peak_rss_growth_mb(code: str) -> tuple[int, float, str]:
    """Run ``code`` after importing bench in a fresh process: (exit code, peak RSS growth in
    MB, stderr)."""
    script = (
        "import resource, sys\n"
        "import bench.cli, bench.formats.idx, bench.formats.images, torch, numpy\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"{code}\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    growth = float(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else -1.0
    return done.returncode, growth, done.stderr


def test_an_idx_header_of_2_to_the_31_allocates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**31, 2**31, 28)
                                   + bytes(1000)))
    code, growth, err = peak_rss_growth_mb(
        "from bench.errors import DataError\n"
        "try:\n"
        f"    bench.formats.idx.read_idx(__import__('pathlib').Path({str(path)!r}), 3)\n"
        "except DataError as exc:\n"
        "    print(exc, file=sys.stderr)\n")
    assert code == 0 and 0 <= growth < 200, err
    assert "over the 8 GiB arbench reads from one IDX file" in err


def test_a_zip_member_that_decompresses_to_256_mib_is_refused_unread(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "shapes.zip"
    with (zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
          archive.open("90000000/box_test.off", "w", force_zip64=True) as member):
        for _ in range(17):  # 272 MiB of zeros, about 270 KB compressed
            member.write(bytes(16 << 20))
    assert path.stat().st_size < 1 << 20
    code, growth, err = peak_rss_growth_mb(
        "from bench.errors import BenchError\n"
        "from bench.families.shape import ZipPredictions\n"
        "try:\n"
        f"    ZipPredictions(__import__('pathlib').Path({str(path)!r})).read('90000000/box_test')\n"
        "except BenchError as exc:\n"
        "    print(exc, file=sys.stderr)\n")
    assert code == 0 and 0 <= growth < 200, err
    assert "over the 256 MiB arbench reads from one prediction file" in err


def test_an_npz_member_over_the_budget_is_refused_before_allocating(tmp_path: Path) -> None:
    path = npz_declaring(tmp_path, (64, 1 << 20), zeros=256 << 20)  # honest 256 MiB of zeros
    assert Path(path).stat().st_size < 1 << 20
    code, growth, err = peak_rss_growth_mb(
        "from bench.errors import ContractError\n"
        "from bench.formats.npz import NpzFile\n"
        f"npz = NpzFile(__import__('pathlib').Path({path!r}), 'preds.npz', max_bytes=64 << 20)\n"
        "print(npz['ids'], file=sys.stderr)\n"
        "try:\n"
        "    npz['logits']\n"
        "except ContractError as exc:\n"
        "    print(exc, file=sys.stderr)\n")
    assert code == 0 and 0 <= growth < 100, err
    assert "['test/00000']" in err
    assert "(64, 1048576) float32 (256 MiB), over the 64 MiB one array may take here" in err


def test_a_png_declaring_1_6_billion_pixels_is_refused_before_decoding() -> None:
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0,
                                                              0, 0))
           + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))
    code, growth, err = peak_rss_growth_mb(
        "from bench.errors import ContractError\n"
        "try:\n"
        f"    bench.formats.images.read_index_png({png!r}, 'seq/00000.png', ContractError)\n"
        "except ContractError as exc:\n"
        "    print(exc, file=sys.stderr)\n")
    assert code == 0 and 0 <= growth < 200, err
    assert "mask seq/00000.png" in err and "1600000000 pixels" in err


class HugeArray:
    """Pickles as numpy's array constructor asked for 8 TiB."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (1 << 43,), b"b"))


def test_a_ground_truth_pickle_asking_for_8_tib_is_refused_before_allocating(
        tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "gnd_roxford5k.pkl"
    path.write_bytes(pickle.dumps({"imlist": ["a"], "gnd": [HugeArray()]}, protocol=2))
    code, growth, err = peak_rss_growth_mb(
        "from bench.errors import DataError\n"
        "from bench.adapters.revisitop import load_plain_pickle\n"
        "try:\n"
        f"    load_plain_pickle(__import__('pathlib').Path({str(path)!r}))\n"
        "except DataError as exc:\n"
        "    print(exc, file=sys.stderr)\n")
    assert code == 0 and 0 <= growth < 200, err
    assert "asks for an array of shape (8796093022208,)" in err


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, capsys,
                                                    monkeypatch) -> None:
    import errno

    from bench.results import SampleWriter

    def full(self, ids, values) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "samples.jsonl"))

    monkeypatch.setattr(SampleWriter, "write", full)
    boards, results = tmp_path / "boards", tmp_path / "results"
    code = main([*RUN, "--model", "logreg", "--leaderboard-dir", str(boards), "--out",
                 str(results)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"arbench: error: No space left on device ({tmp_path / 'samples.jsonl'}) (hint: check "
        "the disk and the folder's permissions; --debug shows where)"]
    assert not any(p.is_file() for p in results.rglob("*")) and not boards.exists()
