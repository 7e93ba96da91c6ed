"""Notebook parameters for `lrmerge study`: what each stage notebook's ``parameters`` cell declares, and ``--set``
values checked against it and parsed with the parameter's type (papermill's ``inspect_notebook``)."""

from __future__ import annotations

import ast
import difflib
from pathlib import Path
from typing import Any, Sequence

from lrmerge.errors import UserError

_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


def notebook_parameters(notebook: Path) -> dict[str, tuple[str | None, str]]:
    """{name: (type name or None when the default is not a plain literal, default text)} of the notebook's
    ``parameters`` cell (papermill's ``inspect_notebook``; a declared annotation wins over the default's type)."""
    import papermill

    found = {}
    for name, info in papermill.inspect_notebook(str(notebook)).items():
        declared = info.get("inferred_type_name")
        kind = declared if declared in ("bool", "int", "float", "str") else None
        if kind is None:
            try:
                kind = _TYPES.get(type(ast.literal_eval(info.get("default", ""))))
            except (ValueError, SyntaxError, TypeError):
                kind = None
        found[name] = (kind, str(info.get("default", "")))
    return found


def declared_parameters(notebook: Path) -> set[str]:
    return set(notebook_parameters(notebook))


def coerce_parameter(name: str, value: Any, kind: str | None, where: str) -> Any:
    """``value`` as the notebook's parameter type: text from ``--set`` is parsed with that type (a comma list such as
    ``0.2`` for a str parameter stays text); a non-text value must already fit. Raises naming the flag."""
    shown = f"--set {name}={value}"
    if kind is None:
        if isinstance(value, str):
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return value
            return parsed if isinstance(parsed, (int, float, bool, str)) else value
        return value
    if kind == "str":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if kind == "bool":
                lowered = text.lower()
                if lowered in ("true", "1", "yes"):
                    return True
                if lowered in ("false", "0", "no"):
                    return False
                raise ValueError(text)
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise UserError(f"{shown}: parameter {name} of {where} is {'an' if kind == 'int' else 'a'} {kind}, "
                            f"{value!r} is not") from None
    fits = {"bool": isinstance(value, bool), "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
    if not fits:
        raise UserError(f"{shown}: parameter {name} of {where} is a {kind}, got {type(value).__name__} {value!r}")
    return float(value) if kind == "float" else value


def check_overrides(overrides: dict | None, notebooks: Sequence[Path]) -> dict:
    """Overrides checked against the ``parameters`` cells of ``notebooks`` and parsed with their types.

    An unknown name raises with the closest declared one; so does a value the parameter's type cannot take."""
    if not overrides:
        return {}
    declared: dict[str, list[tuple[str, str | None]]] = {}
    for notebook in notebooks:
        for name, (kind, _default) in notebook_parameters(notebook).items():
            declared.setdefault(name, []).append((notebook.name, kind))
    checked = {}
    for name, value in overrides.items():
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"--set {name}=...: no parameter {name!r} in the parameters cells of the selected stages' "
                            f"notebooks{hint}")
        for notebook, kind in declared[name]:
            checked[name] = coerce_parameter(name, value, kind, notebook)
    return checked
