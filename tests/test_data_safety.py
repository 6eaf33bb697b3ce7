"""A data root arbench did not create is only ever read: never written, moved or deleted.

Every shipped task is run against a fixture tree (a copy of an embedded build in the real
layout), once with a baseline and once with a predictions file that fails, and the tree must
be byte-identical afterwards (CI runs as root, so file modes would prove nothing: the tree is
hashed). Embedded builds go only into their own folders, and a killed build is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.adapters.base import BUILD_MARK, MANIFEST, ensure_embedded
from bench.errors import BenchError, DataError, SpecError
from bench.runner import build_dataset, dataset_root, evaluate
from bench.spec import load_spec, task_names

# Real-data tasks whose layout an embedded set is written in: (embedded task, params).
READS_EMBEDDED_LAYOUT = {
    "mnist": "digits",
    "nyu-depth": "synthetic-depth",
    "davis-vos": "synthetic-davis-vos",
    "davis-depth": "synthetic-davis-depth",
    "bop-pose": "synthetic-pose",
    "freihand": "synthetic-hands",
    "matching-hpatches": "matching-homography",
    "roxford5k": "synthetic-retrieval",
    "rparis6k": "synthetic-retrieval",
    "geo-places": "synthetic-places",
    "modelnet40": "synthetic-shapes",
    "modelnet10": "synthetic-shapes",
    "shapenet-r2n2": "synthetic-shapes3d",
    "lsun-layout": "synthetic-rooms",
}
FALLBACK_FIXTURE = "digits"


def tree_digest(root: Path) -> str:
    """sha256 over every entry's relative path, kind and bytes (files) or target (links)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_symlink():
            digest.update(b"L" + os.readlink(path).encode())
        elif path.is_file():
            digest.update(b"F" + path.read_bytes())
        else:
            digest.update(b"D")
    return digest.hexdigest()


def user_tree(task: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the embedded build in ``task``'s layout, with a file of the user's beside
    the data, and the overrides that make ``task`` read it."""
    source_task = READS_EMBEDDED_LAYOUT.get(task, FALLBACK_FIXTURE)
    source = load_spec(source_task)
    root = tmp_path / "user-data"
    shutil.copytree(dataset_root(source), root)
    (root / "my-notes.txt").write_text("the user's own file\n")
    overrides = [f"dataset.root={root}"]
    if task in READS_EMBEDDED_LAYOUT and source.dataset.params:
        overrides.append("dataset.params=" + repr(source.dataset.params).replace("'", '"'))
    return root, overrides


def run_quietly(task: str, overrides: list[str], tmp_path: Path, **kwargs) -> Exception | None:
    try:
        evaluate(task, overrides=overrides, limit=2, progress=False,
                 out_dir=tmp_path / "results", leaderboard_dir=tmp_path / "boards", **kwargs)
    except BenchError as exc:
        return exc
    return None


@pytest.mark.parametrize("task", task_names())
def test_a_run_never_touches_the_data_root(task: str, tmp_path: Path) -> None:
    spec = load_spec(task)
    root, overrides = user_tree(task, tmp_path)
    before = tree_digest(root)
    bad_predictions = tmp_path / "predictions.npz"
    bad_predictions.write_bytes(b"not an archive")
    if spec.dataset.embedded:
        with pytest.raises(SpecError, match="reads no other folder"):
            load_spec(task, overrides)
        own = dataset_root(spec)
        own_before = tree_digest(own)
        assert run_quietly(task, [], tmp_path, model=spec.baselines[0]) is None
        assert isinstance(run_quietly(task, [], tmp_path, predictions=str(bad_predictions)),
                          BenchError)
        assert tree_digest(own) == own_before
    else:
        if task in READS_EMBEDDED_LAYOUT:
            assert len(build_dataset(load_spec(task, overrides))) > 0  # the tree was read
        model = spec.baselines[0] if spec.baselines else None
        if model is not None:
            run_quietly(task, overrides, tmp_path, model=model)
        assert isinstance(run_quietly(task, overrides, tmp_path,
                                      predictions=str(bad_predictions)), BenchError)
    assert tree_digest(root) == before


def test_a_folder_that_is_not_our_build_is_refused_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    root.mkdir()
    (root / "stray.txt").write_text("keep me")
    with pytest.raises(DataError, match="not arbench's build.*no MANIFEST.json"):
        ensure_embedded("digits", root)
    assert [p.name for p in root.iterdir()] == ["stray.txt"]
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST).write_text('{"name": "synthetic-depth"}')
    with pytest.raises(DataError, match="naming 'synthetic-depth'"):
        ensure_embedded("digits", other)
    assert (other / MANIFEST).read_text() == '{"name": "synthetic-depth"}'


def test_a_partial_or_stale_build_of_our_own_is_rebuilt(tmp_path: Path) -> None:
    root = ensure_embedded("digits", tmp_path / "digits")
    complete = tree_digest(root)
    victim = next(p for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST)
    victim.unlink()
    ensure_embedded("digits", root)
    assert tree_digest(root) == complete
    manifest = (root / MANIFEST).read_text()
    (root / MANIFEST).write_text(manifest.replace('"builder_version": "1"',
                                                  '"builder_version": "0"'))
    ensure_embedded("digits", root)
    assert tree_digest(root) == complete
    assert not list(tmp_path.glob(".digits-*"))


def test_a_killed_build_leaves_nothing_a_later_run_would_use(tmp_path: Path) -> None:
    """A build killed with SIGKILL half way leaves only a marked temporary folder; the
    next build ignores it, builds afresh and removes it."""
    def build_in_subprocess(body: str) -> int:
        script = textwrap.dedent(f"""
            import os, signal
            from pathlib import Path
            from bench.adapters.base import ensure_embedded
            from bench.registry import EMBEDDED

            @EMBEDDED.register("killed-build")
            def build(root: Path) -> None:
                {body}

            ensure_embedded("killed-build", Path({str(tmp_path / 'killed-build')!r}))
        """)
        return subprocess.run([sys.executable, "-c", script], capture_output=True).returncode

    killed = 'open(root / "half.bin", "wb").write(b"x"); os.kill(os.getpid(), signal.SIGKILL)'
    assert build_in_subprocess(killed) == -9
    assert not (tmp_path / "killed-build").exists()
    (leftover,) = tmp_path.glob(".killed-build-*")
    assert (leftover / BUILD_MARK).is_file()
    assert build_in_subprocess('open(root / "whole.bin", "wb").write(b"y")') == 0
    root = tmp_path / "killed-build"
    assert sorted(p.name for p in root.iterdir()) == [MANIFEST, "whole.bin"]
    assert not leftover.exists()
