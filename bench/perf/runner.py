"""Runner overhead on 30,000 MNIST-format digits: `evaluate()` against a bare PyTorch loop
and against a hand-written loop that computes the same five metrics and writes the same
per-sample records, for the lightest baseline (``logreg``) and the lecture's CNN."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.registry import PERF_CASES
from bench.runner import build_dataset, evaluate, pick_device
from bench.spec import TaskSpec, load_spec
from bench.synth.digits import digits_28x28, write_idx

MODELS = ("logreg", "lecture-cnn")
ECE_BINS = 15
TOP_K = 2


def write_digit_idx(root: Path, count: int, seed: int = 0) -> Path:
    """``count`` 28x28 digits in MNIST IDX (the test split's two files) under ``root``:
    scikit-learn's 1,797 digits tiled and each shifted by up to 2 pixels. Returns ``root``."""
    images, labels = digits_28x28()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(labels), count)
    shifts = rng.integers(-2, 3, (count, 2))
    tiled = np.stack([np.roll(images[i], tuple(s), axis=(0, 1)) for i, s in zip(pick, shifts,
                                                                               strict=True)])
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "t10k-images-idx3-ubyte", tiled)
    write_idx(root / "t10k-labels-idx1-ubyte", labels[pick])
    return root


def digits_spec_at(root: Path) -> TaskSpec:
    """The ``digits`` task (its protocol, metrics and trained baselines) over the IDX files
    at ``root`` instead of its embedded set."""
    spec = load_spec("digits")
    dataset = spec.dataset.model_copy(update={"embedded": None, "root": str(root)})
    return spec.model_copy(update={"dataset": dataset})


def trained_module(name: str, spec: TaskSpec, device: torch.device) -> torch.nn.Module:
    """Baseline ``name``'s network with its weights for ``spec``'s task, in eval mode."""
    from baselines.classification import ARCHITECTURES, weights_path

    module = ARCHITECTURES[name](10)
    module.load_state_dict(torch.load(weights_path(name, spec.task), map_location="cpu",
                                      weights_only=True))
    return module.to(device).eval()


def bare_loop(dataset: torch.utils.data.Dataset, module: torch.nn.Module, batch_size: int,
              device: torch.device) -> None:
    """DataLoader over the dataset and the model's forward pass, nothing else."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    with torch.inference_mode():
        for batch in loader:
            module(batch["image"].to(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop(dataset: torch.utils.data.Dataset, module: torch.nn.Module, batch_size: int,
              device: torch.device, records: Path) -> dict[str, Any]:
    """What a user would write by hand: collect logits, compute accuracy, top-2 accuracy,
    mean class accuracy, ECE (15 bins) and the confusion matrix vectorised on the whole set,
    write the per-sample records (id, correct, predicted, top2_correct, confidence) with one
    pandas call. Returns the metric values."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    ids: list[str] = []
    logits_parts, label_parts = [], []
    with torch.inference_mode():
        for batch in loader:
            logits_parts.append(module(batch["image"].to(device)))
            label_parts.append(batch["label"])
            ids += batch["id"]
        logits = torch.cat(logits_parts).float()
        labels = torch.cat(label_parts).to(logits.device)
        num_classes = logits.shape[1]
        predicted = logits.argmax(1)
        correct = (predicted == labels).float()
        top_k = (logits.topk(TOP_K, 1).indices == labels[:, None]).any(1).float()
        confusion = torch.bincount(labels * num_classes + predicted,
                                   minlength=num_classes**2).view(num_classes, num_classes)
        support = confusion.sum(1)
        present = support > 0
        class_accuracy = confusion.diagonal()[present].double() / support[present]
        confidence, predicted_softmax = logits.softmax(1).max(1)
        bin_index = (confidence * ECE_BINS).ceil().long().clamp(1, ECE_BINS) - 1
        gap = torch.zeros(ECE_BINS, dtype=torch.float64, device=logits.device).index_add_(
            0, bin_index, confidence.double() - (predicted_softmax == labels).double())
    pd.DataFrame({"id": ids, "correct": correct.cpu().numpy(),
                  "predicted": predicted.cpu().numpy(), f"top{TOP_K}_correct": top_k.cpu().numpy(),
                  "confidence": confidence.cpu().numpy()}).to_json(records, orient="records",
                                                                  lines=True, double_precision=15)
    return {"accuracy": float(correct.double().mean()),
            f"top{TOP_K}_accuracy": float(top_k.double().mean()),
            "mean_class_accuracy": float(class_accuracy.mean()),
            "ece": float(gap.abs().sum() / len(labels)),
            "confusion_matrix": confusion.tolist()}


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _agree(hand: dict[str, Any], result: Any) -> bool:
    scalars = all(math.isclose(hand[key], result.metrics[key], rel_tol=1e-9, abs_tol=1e-12)
                  for key in ("accuracy", f"top{TOP_K}_accuracy", "mean_class_accuracy", "ece"))
    return scalars and hand["confusion_matrix"] == result.details["confusion_matrix"]


@PERF_CASES.register("runner")
def case(device: str | None = None, rounds: int = 3, samples: int = 30_000) -> list[dict]:
    """Runner samples/s on 30,000 MNIST-IDX digits vs a bare and a hand-written loop.

    ``evaluate()`` (its loop, and end to end) on ``samples`` digits against a bare loop and a
    hand-written five-metric loop over the same data and model, for logreg and lecture-cnn;
    the three run in turn each round, best of ``rounds``."""
    torch_device = pick_device(device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec = digits_spec_at(write_digit_idx(Path(tmp) / "mnist", samples))
        dataset = build_dataset(spec)
        batch_size = int(spec.protocol["batch_size"])
        for name in MODELS:
            module = trained_module(name, spec, torch_device)
            best = {"bare": math.inf, "hand": math.inf, "loop": math.inf, "total": math.inf}
            agree = True
            for _ in range(rounds):
                best["bare"] = min(best["bare"], _seconds(
                    lambda module=module: bare_loop(dataset, module, batch_size, torch_device)))
                start = time.perf_counter()
                hand = hand_loop(dataset, module, batch_size, torch_device,
                                 Path(tmp) / "hand.jsonl")
                best["hand"] = min(best["hand"], time.perf_counter() - start)
                start = time.perf_counter()
                result = evaluate(spec, name, device=device, out_dir=Path(tmp) / "runs",
                                  leaderboard=False, progress=False)
                best["total"] = min(best["total"], time.perf_counter() - start)
                best["loop"] = min(best["loop"], result.metadata["wall_s"])
                agree = agree and _agree(hand, result)
            rows += [
                {"model": name, "loop": "bare PyTorch (DataLoader + forward)",
                 "samples/s": f"{samples / best['bare']:.0f}", "vs bare": "1.00", "vs hand": "",
                 "same metrics": ""},
                {"model": name, "loop": "hand-written: 5 metrics + records (pandas)",
                 "samples/s": f"{samples / best['hand']:.0f}",
                 "vs bare": f"{best['bare'] / best['hand']:.2f}", "vs hand": "1.00",
                 "same metrics": ""},
                {"model": name, "loop": "arbench evaluate() loop",
                 "samples/s": f"{samples / best['loop']:.0f}",
                 "vs bare": f"{best['bare'] / best['loop']:.2f}",
                 "vs hand": f"{best['hand'] / best['loop']:.2f}",
                 "same metrics": "yes" if agree else "NO"},
                {"model": name, "loop": "arbench evaluate() end to end (data, model, figures)",
                 "samples/s": f"{samples / best['total']:.0f}",
                 "vs bare": f"{best['bare'] / best['total']:.2f}",
                 "vs hand": f"{best['hand'] / best['total']:.2f}", "same metrics": ""},
            ]
    return rows
