"""The one error type users see: a one-line message with a hint, exit code 2."""

from __future__ import annotations


class BenchError(Exception):
    """A user-facing error: `message` says what is wrong, `hint` what to do about it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class SpecError(BenchError):
    """A task spec that is malformed; `errors` holds every problem found, one per line."""

    def __init__(self, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        head = errors[0] if len(errors) == 1 else f"{len(errors)} errors in {path}"
        super().__init__(head, None if len(errors) == 1 else "; ".join(errors))


class DataError(BenchError):
    """Data that is missing, truncated or malformed."""


class ContractError(BenchError):
    """A prediction or sample that breaks its family's contract (shape, dtype, NaN ...)."""


class ModelError(BenchError):
    """A model reference that cannot be loaded or a checkpoint that does not fit."""
