"""JSON files of data sets and predictions, read with every failure as one clean error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import DataError


def read_json(path: Path, error: type[Exception] = DataError) -> Any:
    """The parsed content of a UTF-8 JSON file; unreadable, malformed or absurdly nested
    files (the parser's recursion limit) raise ``error`` naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise error(f"{path} is not valid JSON: {reason}") from exc
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
