"""DAVIS predictions in the field's native layout: a results folder ``<sequence>/<frame>.png``
of indexed PNGs, exactly what davis2017-evaluation's ``--results_path`` reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.errors import ContractError, ModelError
from bench.formats.palette import davis_palette
from bench.runner import build_dataset, evaluate
from bench.spec import load_spec


def write_results(root: Path, sequences: dict[str, np.ndarray]) -> None:
    """Label maps [T,H,W] per sequence as ``root/<sequence>/<t:05d>.png`` palette PNGs."""
    for name, label_maps in sequences.items():
        (root / name).mkdir(parents=True)
        for t, labels in enumerate(label_maps):
            mask = Image.fromarray(labels.astype(np.uint8), mode="P")
            mask.putpalette(davis_palette())
            mask.save(root / name / f"{t:05d}.png")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.fixture(scope="module")
def first_two() -> dict[str, dict[str, np.ndarray]]:
    """Ground truth and first-frame copies of the first two embedded sequences."""
    dataset = build_dataset(load_spec("synthetic-davis-vos"))
    truth, copied = {}, {}
    for index in range(2):
        sample = dataset[index]
        annotations = sample["annotations"].numpy()
        truth[sample["id"]] = annotations
        copied[sample["id"]] = np.repeat(sample["first_mask"].numpy()[None], len(annotations), 0)
    return {"truth": truth, "first_frame": copied}


def test_results_folder_scores_like_the_model_it_holds(first_two: dict, run_dirs: dict,
                                                       tmp_path: Path) -> None:
    perfect = tmp_path / "perfect"
    write_results(perfect, first_two["truth"])
    before = snapshot(perfect)
    result = evaluate("synthetic-davis-vos", predictions=str(perfect), limit=2, progress=False,
                      **run_dirs)
    assert result.metrics["J&F-Mean"] == 1.0 and result.metrics["J-Decay"] == 0.0
    assert snapshot(perfect) == before  # read, never written

    # the first-frame masks copied to every frame score exactly as the first-frame baseline
    copied = tmp_path / "copied"
    write_results(copied, first_two["first_frame"])
    from_folder = evaluate("synthetic-davis-vos", predictions=str(copied), limit=2, progress=False,
                           **run_dirs)
    baseline = evaluate("synthetic-davis-vos", "first-frame", limit=2, progress=False, **run_dirs)
    assert from_folder.metrics["J&F-Mean"] < 1
    for key, value in baseline.metrics.items():
        assert from_folder.metrics[key] == pytest.approx(value), key

    # the same layout zipped (inside one top-level folder) gives the same numbers
    archive = shutil.make_archive(str(tmp_path / "copied"), "zip", tmp_path, "copied")
    from_zip = evaluate("synthetic-davis-vos", predictions=archive, limit=2, progress=False,
                        **run_dirs)
    assert from_zip.metrics == pytest.approx(from_folder.metrics)


def test_results_folder_errors_name_the_first_missing_or_bad_file(
        first_two: dict, run_dirs: dict, tmp_path: Path) -> None:
    results = tmp_path / "masks"
    write_results(results, first_two["truth"])
    first, second = first_two["truth"]
    shutil.rmtree(results / second)
    with pytest.raises(ModelError, match=rf"has no masks for sequence '{second}'"):
        evaluate("synthetic-davis-vos", predictions=str(results), limit=2, progress=False,
                 **run_dirs)

    (results / first / "00003.png").unlink()
    with pytest.raises(ModelError, match=rf"masks: missing {first}/00003\.png$"):
        evaluate("synthetic-davis-vos", predictions=str(results), limit=1, progress=False,
                 **run_dirs)

    with pytest.raises(ModelError, match=r"video predictions take no '::d2-net' option"):
        evaluate("synthetic-davis-vos", predictions=f"{results}::d2-net", limit=1, progress=False,
                 **run_dirs)

    write_results(tmp_path / "rgb", {first: first_two["truth"][first]})
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb" / first / "00002.png")
    with pytest.raises(ContractError, match=rf"mask .*rgb/{first}/00002\.png is a RGB image"):
        evaluate("synthetic-davis-vos", predictions=str(tmp_path / "rgb"), limit=1, progress=False,
                 **run_dirs)


def test_cli_takes_a_results_folder(first_two: dict, run_dirs: dict, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "masks"
    write_results(results, first_two["truth"])
    args = ["run", "synthetic-davis-vos", "--predictions", str(results), "--limit", "1", "--out",
            str(run_dirs["out_dir"]), "--leaderboard-dir", str(run_dirs["leaderboard_dir"])]
    assert main(args) == 0
    assert "J&F-Mean" in capsys.readouterr().out
    shutil.rmtree(results / next(iter(first_two["truth"])))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "has no masks for sequence" in err and "Traceback" not in err
