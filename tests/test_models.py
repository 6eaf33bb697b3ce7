"""Model references: TorchScript, torch.export, state_dict + arch, callables, predictions
files, safe checkpoint loading and contract checks."""

from __future__ import annotations

import io
from pathlib import Path

import nets
import numpy as np
import pytest
import torch

from bench import evaluate
from bench.errors import ContractError, ModelError


def digits(model: str | None, run_dirs: dict, **kwargs):
    return evaluate("digits", model, limit=40, progress=False, **run_dirs, **kwargs)


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    torch.manual_seed(0)
    return nets.tiny_cnn().eval()


def test_state_dict_with_arch(tmp_path: Path, run_dirs: dict, trained) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(trained.state_dict(), path)
    result = digits(str(path), run_dirs, arch="nets:tiny_cnn")
    assert result.model == "tiny" and result.metadata["model_kind"] == "checkpoint"
    assert len(result.metadata["model_fingerprint"]) == 16
    with pytest.raises(ModelError, match="needs the architecture"):
        digits(str(path), run_dirs)
    with pytest.raises(ModelError, match="does not fit architecture nets:other_cnn"):
        digits(str(path), run_dirs, arch="nets:other_cnn")


def test_torchscript_and_export_agree_with_state_dict(tmp_path: Path, run_dirs: dict,
                                                      trained) -> None:
    state = tmp_path / "net.pt"
    torch.save(trained.state_dict(), state)
    scripted = tmp_path / "net.ts"
    torch.jit.script(trained).save(str(scripted))
    exported = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(trained, (torch.zeros(2, 1, 28, 28),),
                                          dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      str(exported))
    reference = digits(str(state), run_dirs, arch="nets:tiny_cnn").metrics
    assert digits(str(scripted), run_dirs).metrics == pytest.approx(reference)
    assert digits(str(exported), run_dirs).metrics == pytest.approx(reference)


class MarkerOnLoad:
    """Unpickling it creates a marker file: proof that code ran on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_an_export_archive_that_unpickles_code_is_refused(tmp_path: Path, run_dirs: dict,
                                                          trained) -> None:
    import zipfile

    exported = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(trained, (torch.zeros(2, 1, 28, 28),),
                                          dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      str(exported))
    marker = tmp_path / "code-ran"
    hostile = tmp_path / "hostile.pt2"
    with zipfile.ZipFile(exported) as source, zipfile.ZipFile(hostile, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if "/data/sample_inputs/" in info.filename:
                buffer = io.BytesIO()
                torch.save(((MarkerOnLoad(marker),), {}), buffer)
                data = buffer.getvalue()
            target.writestr(info, data)
    with pytest.raises(ModelError, match="sample_inputs.*pickled Python objects"):
        digits(str(hostile), run_dirs)
    assert not marker.exists()
    assert digits(str(exported), run_dirs).n_samples == 40  # a plain export still loads


def test_pickled_module_needs_trust(tmp_path: Path, run_dirs: dict, trained) -> None:
    path = tmp_path / "whole.pt"
    torch.save(trained, path)
    with pytest.raises(ModelError, match="refusing to unpickle"):
        digits(str(path), run_dirs)
    assert digits(str(path), run_dirs, trust_checkpoint=True).n_samples == 40


def test_corrupt_checkpoint(tmp_path: Path, run_dirs: dict) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="broken.pt is not a PyTorch checkpoint"):
        digits(str(path), run_dirs, arch="nets:tiny_cnn")
    with pytest.raises(ModelError, match="not a PyTorch checkpoint"):
        digits(str(path), run_dirs, arch="nets:tiny_cnn", trust_checkpoint=True)


def test_python_callable(run_dirs: dict) -> None:
    result = digits("nets:predict_label_from_pixels", run_dirs)
    assert result.metadata["model_kind"] == "callable"
    hits = [int(sample["image"].sum()) % 10 == sample["label"] for sample in _samples(40)]
    assert result.metrics["accuracy"] == pytest.approx(sum(hits) / 40)


@pytest.mark.parametrize(("ref", "message"), [
    ("nets:wrong_shape", r"prediction 'logits' has shape \(40, 3\), expected \[40, 10\]"),
    ("nets:nan_logits", "prediction 'logits' has 400 NaN or infinite values"),
])
def test_contract_violations(run_dirs: dict, ref: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        digits(ref, run_dirs)
    assert not (run_dirs["leaderboard_dir"] / "digits.csv").exists()


def test_unknown_references(run_dirs: dict) -> None:
    with pytest.raises(ModelError, match="cannot import 'no_such_module'"):
        digits("no_such_module:f", run_dirs)
    with pytest.raises(ModelError, match="does not exist"):
        digits("missing.pt", run_dirs)
    with pytest.raises(ModelError, match="cannot resolve model 'lenet'"):
        digits("lenet", run_dirs)


def test_baseline_of_another_family_is_refused(run_dirs: dict) -> None:
    from bench.models import Baseline
    from bench.registry import MODELS

    other = next((n for n in MODELS.names() if MODELS.get(n).family != "classification"), None)
    if other is None:
        pytest.skip("no baseline of another family is registered")
    assert isinstance(MODELS.get(other), Baseline)
    with pytest.raises(ModelError, match="is a .* model; task 'digits' is classification"):
        digits(f"baseline:{other}", run_dirs)


def test_predictions_files(tmp_path: Path, run_dirs: dict) -> None:
    ids = [f"test/{i:05d}" for i in range(40)]
    logits = np.zeros((40, 10), dtype=np.float32)
    logits[:, 3] = 1.0
    npz = tmp_path / "preds.npz"
    np.savez(npz, ids=np.array(ids), logits=logits)
    result = digits(None, run_dirs, predictions=str(npz))
    labels = [sample["label"] for sample in _samples(40)]
    assert result.metrics["accuracy"] == pytest.approx(labels.count(3) / 40)
    csv_path = tmp_path / "preds.csv"
    rows = ["id," + ",".join(f"logit_{c}" for c in range(10))]
    rows += [i + "," + ",".join("1" if c == 3 else "0" for c in range(10)) for i in ids]
    csv_path.write_text("\n".join(rows) + "\n")
    assert digits(None, run_dirs, predictions=str(csv_path)).metrics == result.metrics
    csv_path.write_text("\n".join([*rows[:5], "test/00004,1,2"]) + "\n")
    with pytest.raises(ContractError, match="preds.csv:6: 3 fields, header has 11"):
        digits(None, run_dirs, predictions=str(csv_path))
    np.savez(npz, ids=np.array(ids[:10]), logits=logits[:10])
    with pytest.raises(ModelError, match="no prediction for sample 'test/00010'"):
        digits(None, run_dirs, predictions=str(npz))
    csv_path.write_text("\n".join([*rows, rows[3]]) + "\n")
    with pytest.raises(ModelError,
                       match=r"two predictions for sample 'test/00002' \(rows 3 and 41\)"):
        digits(None, run_dirs, predictions=str(csv_path))


def _samples(n: int) -> list[dict]:
    """The first ``n`` samples of the digits test set."""
    from bench.runner import build_dataset
    from bench.spec import load_spec

    dataset = build_dataset(load_spec("digits"))
    return [dataset[i] for i in range(n)]
