"""The one family of user errors: what the CLI prints as ``error: <one line>`` (exit 2) instead of a traceback.

A user error names its culprit (file, tensor, field or flag) and how to fix it. ``UserError`` is for our own
checks; ``ValueError`` (pydantic's ValidationError, JSONDecodeError and UnicodeDecodeError among them), ``OSError``
(FileNotFoundError, FileExistsError, PermissionError) and ``KeyError`` from the package count as user errors too.
Set ``LRMERGE_TRACEBACK=1`` or pass ``--traceback`` to see the full trace.
"""

from __future__ import annotations

import os
import pickle
import sys


class UserError(ValueError):
    """A problem with the user's input or environment, stated in one line naming the file, field or flag."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError, KeyError, pickle.UnpicklingError)


def user_errors() -> tuple[type[BaseException], ...]:
    """USER_ERRORS plus the parse errors of libraries already imported (YAML, safetensors)."""
    extra = []
    if "yaml" in sys.modules:
        extra.append(sys.modules["yaml"].YAMLError)
    if "safetensors" in sys.modules and hasattr(sys.modules["safetensors"], "SafetensorError"):
        extra.append(sys.modules["safetensors"].SafetensorError)
    return USER_ERRORS + tuple(extra)


def plain_validation(error) -> str:
    """A pydantic ValidationError as one line, ``field: message; field: message`` (our validators' own messages,
    without pydantic's "N validation errors for ... Value error," wrapping)."""
    parts = []
    for item in error.errors():
        inner = (item.get("ctx") or {}).get("error")
        message = str(inner) if inner is not None else item.get("msg", "")
        where = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or str(error)
TRACEBACK_ENV = "LRMERGE_TRACEBACK"


def want_traceback() -> bool:
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(error: BaseException) -> str:
    """The error as one line (a KeyError's message without its quotes; line breaks folded)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text or type(error).__name__
