"""The bop adapter on a small set written in the BOP layout, the BOP results CSV, and
evaluate() end to end with the oracle baselines."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.adapters.base import DatasetInfo
from bench.adapters.bop import BopDataset
from bench.errors import ContractError, DataError
from bench.families.pose import BOP_HEADER, BopResults, PoseFamily, write_bop_results
from bench.runner import evaluate
from bench.spec import load_spec
from bench.synth.synthetic_pose import write_set


@pytest.fixture(scope="module")
def bop_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bop") / "synthetic-pose"
    root.mkdir()
    write_set(root, test_images=2, train_views=0)
    return root


def spec_for(root: Path):
    return load_spec("synthetic-pose", [f"dataset.root={root}", "dataset.embedded=null"])


def test_adapter_reads_bop_layout_in_metres(bop_root: Path) -> None:
    data = BopDataset(bop_root, "test")
    targets = json.loads((bop_root / "test_targets_bop19.json").read_text())
    assert len(data) == len(targets)
    sample = data[0]
    gt = json.loads((bop_root / "test/000001/scene_gt.json").read_text())
    entry = next(g for g in gt[str(sample["im_id"])] if g["obj_id"] == sample["obj_id"])
    np.testing.assert_allclose(sample["t"].numpy(), np.array(entry["cam_t_m2c"]) / 1000.0)
    info = json.loads((bop_root / "models_eval/models_info.json").read_text())
    assert sample["diameter"] == pytest.approx(info[str(sample["obj_id"])]["diameter"] / 1000)
    assert sample["image"].shape == (3, 240, 320) and float(sample["image"].min()) >= 0
    assert float(sample["model_points"].abs().max()) < 0.1  # metres, not millimetres
    # Depth at the object's visible pixels equals the model's z in the camera frame.
    assert float(sample["depth"].max()) < 1.0
    symmetric = {s["obj_id"]: s["symmetric"] for s in (data[i] for i in range(len(data)))}
    assert symmetric == {1: False, 2: True, 3: True, 4: False}
    assert data[0]["symmetries"].shape[1:] == (4, 4)


def test_symmetric_override_and_missing_files(bop_root: Path, tmp_path: Path) -> None:
    data = BopDataset(bop_root, "test", symmetric=[1])
    assert {data[i]["obj_id"]: data[i]["symmetric"] for i in range(len(data))}[1] is True
    with pytest.raises(DataError, match="does not exist"):
        BopDataset(tmp_path / "nowhere", "test")
    broken = tmp_path / "broken"
    shutil.copytree(bop_root, broken)
    (broken / "test/000001/scene_gt.json").unlink()
    with pytest.raises(DataError, match="scene_gt.json"):
        BopDataset(broken, "test")
    info_path = broken / "models_eval/models_info.json"
    info = json.loads(info_path.read_text())
    del info["4"]
    info_path.write_text(json.dumps(info))
    shutil.copy(bop_root / "test/000001/scene_gt.json", broken / "test/000001/scene_gt.json")
    with pytest.raises(DataError, match="object 4 has no model"):
        BopDataset(broken, "test")


def _rows(data: BopDataset) -> list[dict]:
    return [{"scene_id": s["scene_id"], "im_id": s["im_id"], "obj_id": s["obj_id"],
             "R": s["R"].numpy(), "t": s["t"].numpy(), "score": 0.9}
            for s in (data[i] for i in range(len(data)))]


def test_results_csv_duplicates_and_missing(bop_root: Path, tmp_path: Path,
                                            run_dirs: dict[str, Path]) -> None:
    data = BopDataset(bop_root, "test")
    rows = _rows(data)
    wrong = dict(rows[0], R=np.eye(3), t=np.array([0.0, 0.0, 2.0]), score=0.1)
    missing = rows.pop()
    path = tmp_path / "est.csv"
    write_bop_results(path, [wrong, *rows])  # lower-score duplicate of the first target
    results = BopResults(path)
    assert results.duplicates == 1
    result = evaluate(spec_for(bop_root), predictions=str(path), progress=False, **run_dirs)
    n = len(data)
    assert result.metrics["add_s_accuracy"] == pytest.approx((n - 1) / n)
    assert result.metrics["detection_rate"] == pytest.approx((n - 1) / n)
    assert result.metrics["ar_mssd"] == pytest.approx((n - 1) / n)
    assert missing["obj_id"] in (1, 2, 3, 4)


@pytest.mark.parametrize(("line", "message"), [
    ("1,1,1,1.0,1 0 0 0 1 0 0 0 1,0 0 500", "3 numbers"),  # too few fields
    ("1,1,1,1.0,1 0 0 0 1 0 0 0,0 0 500,-1", "R has 8 numbers"),
    ("1,1,1,1.0,1 0 0 0 2 0 0 0 1,0 0 500,-1", "not a rotation"),
    ("1,1,9,1.0,1 0 0 0 1 0 0 0 1,0 0 500,-1", "object 9 has no model"),
    ("1,x,1,1.0,1 0 0 0 1 0 0 0 1,0 0 500,-1", "integers"),
])
def test_results_csv_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(",".join(BOP_HEADER) + "\n" + line + "\n")
    if message == "3 numbers":
        message = "6 fields, expected 7"
    with pytest.raises(ContractError, match=rf"bad.csv:2: .*{message}"):
        BopResults(path, known_objects=[1, 2])


def test_results_csv_wrong_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("scene,im,obj,R,t\n")
    with pytest.raises(ContractError, match="bad.csv:1: BOP results header"):
        BopResults(path)


def test_check_prediction_nan_and_rotations() -> None:
    family = PoseFamily()
    batch = {"id": ["a", "b"]}
    info = DatasetInfo("x", Path("."), "test", "", 2, meta={})
    R = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    t = torch.tensor([[0.0, 0, 0.5], [math.nan, 0, 0.5]], dtype=torch.float64)
    out = family.check_prediction({"R": R, "t": t}, batch, info)
    assert out["valid"].tolist() == [True, False]
    skewed = R.clone()
    skewed[0, 0, 0] = 1.2
    with pytest.raises(ContractError, match="sample 'a' is not a rotation"):
        family.check_prediction({"R": skewed, "t": t}, batch, info)
    info.meta["project_rotations"] = True
    fixed = family.check_prediction({"R": skewed, "t": t}, batch, info)["R"][0]
    np.testing.assert_allclose(fixed @ fixed.T, np.eye(3), atol=1e-12)
    with pytest.raises(ContractError, match="dict with 'R'"):
        family.check_prediction(R, batch, info)


def test_oracles_end_to_end(bop_root: Path, run_dirs: dict[str, Path]) -> None:
    spec = spec_for(bop_root)
    perfect = evaluate(spec, "oracle", progress=False, **run_dirs)
    for key in ("add_accuracy", "adds_accuracy", "add_s_accuracy", "auc_adds", "auc_add_s",
                "cm5deg5_accuracy", "proj2d_accuracy", "ar_mssd", "ar_mspd"):
        assert perfect.metrics[key] == pytest.approx(1.0), key
    assert any(Path(f).name == "add_accuracy_curve.png" for f in perfect.figures)
    assert (run_dirs["leaderboard_dir"] / "synthetic-pose.csv").is_file()
    turned = evaluate(spec, "oracle-rot3", progress=False, **run_dirs)
    assert turned.metrics["rotation_error_mean"] == pytest.approx(3.0, abs=1e-6)
    assert turned.metrics["translation_error_mean"] == pytest.approx(0.0, abs=1e-12)
    assert turned.metrics["cm5deg5_accuracy"] == pytest.approx(1.0)
