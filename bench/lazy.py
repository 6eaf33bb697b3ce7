"""Import a heavy library on first use: ``torch = lazy_import("torch")`` at a module's top.

The module object is created at once (``importlib.util.LazyLoader``) and its code runs
the first time one of its attributes is read, so a module that only declares things
(metric parameters and outputs, checked by ``arbench validate``) loads without torch,
faiss, OpenCV or SciPy. A name already imported is returned as it is.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module ``name``, executed on first attribute access. ``name`` is a top-level
    package or a module whose parent package is cheap to import (finding a submodule's
    file imports its parent); a name that cannot be found raises ModuleNotFoundError now."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
