"""Model references -> Predictors: baselines, torch.export, TorchScript, state_dicts,
Python callables and predictions files. Checkpoints load with ``weights_only=True``."""

from __future__ import annotations

import csv
import hashlib
import importlib
import inspect
import io
import json
import os
import pickle
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.export.passes import move_to_device_pass

from bench.errors import ModelError
from bench.families.base import Family, Predictor
from bench.registry import MODELS


@dataclass
class Baseline:
    """A shipped baseline: which family it serves, how to build it, how to train it."""

    name: str
    family: str
    build: Callable[..., Predictor]
    train: Callable[..., Path] | None = None
    weights: Callable[[str], list[Path]] = field(default=lambda task: [])
    default_task: str | None = None
    also_families: tuple[str, ...] = ()

    def serves(self, family: str) -> bool:
        """Whether the baseline predicts for ``family`` (its own or one of ``also_families``)."""
        return family == self.family or family in self.also_families


def register_baseline(
    name: str,
    family: str,
    *,
    weights: Callable[[str], list[Path]] | None = None,
    train: Callable[..., Path] | None = None,
    default_task: str | None = None,
    description: str | None = None,
    also_families: tuple[str, ...] = (),
) -> Callable[[Callable[..., Predictor]], Callable[..., Predictor]]:
    """Decorator: register ``build(spec, info, device) -> Predictor`` as baseline ``name``.

    ``weights(task)`` lists the files the baseline loads for ``task`` (they fingerprint the
    model); ``train(spec, device, out=None, epochs=None, seed=0) -> Path`` trains it on
    ``spec``'s train split; ``default_task`` is the task `arbench train NAME` uses when
    no ``--task`` is given; ``also_families`` names further families whose contract the
    same predictor honours (e.g. retrieval and localization share descriptors).
    """

    def decorate(build: Callable[..., Predictor]) -> Callable[..., Predictor]:
        doc = description or (build.__doc__ or "").strip()
        baseline = Baseline(name, family, build, train, weights or (lambda task: []),
                            default_task, tuple(also_families))
        MODELS.register(name, doc, module=build.__module__)(baseline)
        return build

    return decorate


@dataclass
class ModelInfo:
    """What a run records about its model."""

    name: str
    ref: str
    kind: str
    fingerprint: str


def file_hash(*paths: Path) -> str:
    """sha256 over the files' contents (16 hex digits); '' when there are none.

    A folder counts as the relative names and contents of every file under it (a results
    folder in a reference's per-file layout)."""
    digest = hashlib.sha256()
    found = False
    for path in paths:
        if path.is_file():
            digest.update(path.read_bytes())
            found = True
        elif path.is_dir():
            for member in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(str(member.relative_to(path)).encode())
                digest.update(member.read_bytes())
                found = True
    return digest.hexdigest()[:16] if found else ""


def _import_object(ref: str) -> Any:
    """Import ``module:attr`` (the current directory is importable, as with ``python -m``)."""
    module_name, _, attr = ref.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(f"cannot import {module_name!r} for model {ref!r}: "
                         f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())


TRUST_HINT = ("save a state_dict (torch.save(model.state_dict(), f)), TorchScript or a "
              "torch.export file of tensors, or pass --trust-checkpoint if you trust the file's "
              "author")


def _load_checkpoint(path: Path, trust: bool) -> Any:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise ModelError(f"{path} is not a PyTorch checkpoint (neither a torch.save archive "
                         "nor a pickle)", "give a .pt/.pth state_dict, TorchScript or .pt2 file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust:
            raise ModelError(
                f"{path} holds pickled Python objects beyond tensors; refusing to unpickle it",
                TRUST_HINT) from exc
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError) as exc:
        raise ModelError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from exc


def check_export_archive(path: Path) -> None:
    """Refuse a ``torch.export`` (.pt2) archive whose loading would unpickle Python objects.

    ``torch.export.load`` unpickles the sample inputs (falling back to the full unpickler when
    the safe one fails), weight and constant payloads marked ``use_pickle`` and legacy
    ``.pt`` payloads, and custom or opaque constants with the full unpickler. Every such
    member must load with ``torch.load(weights_only=True)``: the same bytes then hold nothing
    but tensors and containers, whichever unpickler torch uses afterwards. Custom and opaque
    objects are refused outright."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.split("/", 1)[1]: name for name in archive.namelist() if "/" in name}
            pickled = [member for rel, member in members.items()
                       if rel.startswith("data/sample_inputs/")
                       or (rel.startswith(("data/weights/", "data/constants/"))
                           and rel.endswith(".pt"))]
            for rel, member in members.items():
                if not (rel.startswith(("data/weights/", "data/constants/"))
                        and rel.endswith("config.json")):
                    continue
                folder = rel.rsplit("/", 1)[0]
                config = json.loads(archive.read(member)).get("config", {})
                for fqn, meta in config.items():
                    name = str(meta.get("path_name", ""))
                    if name.startswith(("custom_obj_", "opaque_obj_")):
                        raise ModelError(f"{path}: constant {fqn!r} is a pickled Python object; "
                                         "refusing to load it", TRUST_HINT)
                    if meta.get("use_pickle") and f"{folder}/{name}" in members:
                        pickled.append(members[f"{folder}/{name}"])
            for member in pickled:
                try:
                    torch.load(io.BytesIO(archive.read(member)), map_location="cpu",
                               weights_only=True)
                except pickle.UnpicklingError as exc:
                    raise ModelError(f"{path}: member {member} holds pickled Python objects "
                                     "beyond tensors; refusing to load it", TRUST_HINT) from exc
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a torch.export archive: {exc}") from exc


def _state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    return None


def build_module(
    path: Path, arch: str | None, trust: bool, device: torch.device
) -> torch.nn.Module:
    """A checkpoint file -> an nn.Module in eval mode on ``device`` (torch.export program,
    TorchScript, state_dict + ``arch`` factory, or a pickled module when trusted)."""
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    if path.suffix == ".pt2":
        if not trust:
            check_export_archive(path)
        try:
            program = torch.export.load(str(path))
            return move_to_device_pass(program, device).module()
        except Exception as exc:
            raise ModelError(f"cannot load torch.export file {path}: {exc}") from exc
    if _is_torchscript(path):
        return torch.jit.load(str(path), map_location=device).eval()
    loaded = _load_checkpoint(path, trust)
    if isinstance(loaded, torch.nn.Module):
        return loaded.to(device).eval()
    state = _state_dict_of(loaded)
    if state is None:
        raise ModelError(f"{path} is neither a module, TorchScript, torch.export nor a state_dict")
    if arch is None:
        raise ModelError(
            f"{path} is a state_dict; it needs the architecture",
            "pass --arch module:factory (a function returning the nn.Module)",
        )
    factory = _import_object(arch)
    try:
        module = factory()
    except Exception as exc:
        raise ModelError(f"--arch {arch} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"--arch {arch} returned {type(module).__name__}, not an nn.Module")
    own = module.state_dict()
    missing = [name for name in own if name not in state]
    unexpected = [name for name in state if name not in own]
    mismatched = [f"{name} {tuple(state[name].shape)} vs {tuple(tensor.shape)}"
                  for name, tensor in own.items()
                  if name in state and state[name].shape != tensor.shape]
    if missing or unexpected or mismatched:
        raise ModelError(
            f"checkpoint {path.name} does not fit architecture {arch}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, other shapes {mismatched[:3]}",
            "check --arch matches the network the weights were saved from",
        )
    module.load_state_dict(state)
    return module.to(device).eval()


def load_model(
    ref: str | None,
    family: Family,
    spec: Any,
    dataset: Any,
    device: torch.device,
    *,
    arch: str | None = None,
    predictions: str | None = None,
    trust_checkpoint: bool = False,
    name: str | None = None,
) -> tuple[Predictor, ModelInfo]:
    """Resolve a model reference (or predictions file) into a Predictor on ``device``."""
    if predictions is not None:
        source, _, option = predictions.partition("::")
        path = Path(source)
        if not path.exists():
            raise ModelError(f"predictions {path} does not exist",
                             "give a predictions file, or a results folder in a layout the "
                             "task's family reads (docs/<family>.md)")
        if option and "option" not in inspect.signature(family.load_predictions).parameters:
            raise ModelError(f"{spec.family} predictions take no '::{option}' option")
        try:
            predictor = (family.load_predictions(path, dataset, option=option) if option
                         else family.load_predictions(path, dataset))
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, csv.Error) as exc:
            raise ModelError(f"predictions {path} cannot be read as the {spec.family} family's "
                             f"format: {exc}", f"see docs/{spec.family}.md") from exc
        # a predictor reading a few files of a shared folder names them in ``source_files``
        fingerprint = file_hash(*getattr(predictor, "source_files", (path,)))
        return predictor, ModelInfo(name or option or path.stem, predictions, "predictions",
                                    fingerprint)
    if not ref:
        raise ModelError("no model given", "pass --model REF or --predictions FILE")
    baseline_name = ref.removeprefix("baseline:")
    if ref.startswith("baseline:") or (baseline_name in MODELS and not Path(ref).exists()):
        baseline: Baseline = MODELS.get(baseline_name)
        if not baseline.serves(spec.family):
            raise ModelError(
                f"baseline {baseline_name!r} is a {baseline.family} model; "
                f"task {spec.task!r} is {spec.family}"
            )
        predictor = baseline.build(spec, dataset.info, device)
        fingerprint = file_hash(*baseline.weights(spec.task)) or hashlib.sha256(
            baseline_name.encode()).hexdigest()[:16]
        return predictor, ModelInfo(name or baseline_name, ref, "baseline", fingerprint)
    path = Path(ref)
    if path.suffix in (".pt", ".pth", ".pt2", ".ts", ".ckpt", ".bin", ".jit") or path.is_file():
        module = build_module(path, arch, trust_checkpoint, device)
        kind = "torch.export" if path.suffix == ".pt2" else "checkpoint"
        return family.module_predictor(module), ModelInfo(
            name or path.stem, ref, kind, file_hash(path)
        )
    if ":" in ref:
        obj = _import_object(ref)
        module_file = Path(getattr(sys.modules[ref.partition(":")[0]], "__file__", "") or "")
        fingerprint = file_hash(module_file)
        if isinstance(obj, torch.nn.Module):
            return family.module_predictor(obj.to(device).eval()), ModelInfo(
                name or ref, ref, "module", fingerprint
            )
        if callable(obj):
            return obj, ModelInfo(name or ref, ref, "callable", fingerprint)
        raise ModelError(f"{ref} is neither an nn.Module nor a callable")
    raise ModelError(
        f"cannot resolve model {ref!r}",
        "use baseline:NAME, a .pt/.pt2 file, or module:function (see `arbench list`)",
    )
