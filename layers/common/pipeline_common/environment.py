"""Settings read from a function's environment: the machinery every function's settings share.

Settings are plain frozen dataclasses read by :meth:`Settings.from_env`, with no validation
library: every function imports its settings on its cold start, and pydantic alone costs about a
tenth of a handler's import (``benchmarks/cold_start.py``). A field's annotation says how its
variable is read: ``str`` as it is, ``int`` and ``float`` finite and at least 0, ``bool`` as
``true``/``false`` (``1``/``0``, ``yes``/``no``, ``on``/``off``), ``tuple[str, ...]``
comma-separated. A class checks what no annotation says in :meth:`Settings.problems`.

The functions' own settings are in :mod:`pipeline_common.settings`; predict's, which every canary
imports, are beside its serving code and import only this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, Self

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class SettingsError(RuntimeError):
    """A function was deployed without a setting it needs, or with one it cannot use."""


def _number(text: str, kind: str) -> int | float:
    number: int | float
    try:
        number = int(text.strip()) if kind == "int" else float(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not {'an integer' if kind == 'int' else 'a number'}"
        ) from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{text!r} is not a finite number of at least 0")
    return number


def _flag(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError(f"{text!r} is not true or false")


def read_setting(text: str, kind: str) -> Any:
    """One variable's value as its field's annotation says."""
    if kind == "str":
        return text
    if kind in ("int", "float"):
        return _number(text, kind)
    if kind == "bool":
        return _flag(text)
    if kind == "tuple[str, ...]":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    raise TypeError(f"no way to read a setting annotated {kind!r}")


@dataclass(frozen=True)
class Settings:
    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        """The settings, or :class:`SettingsError` naming every variable that is missing or
        unusable, in the order of the fields."""
        given = {name.lower(): value for name, value in environ.items()}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for spec in fields(cls):
            if spec.name not in given:
                if spec.default is MISSING:
                    problems.append(f"{spec.name.upper()}: required")
                continue
            kind = spec.type if isinstance(spec.type, str) else spec.type.__name__
            try:
                values[spec.name] = read_setting(given[spec.name], kind)
            except ValueError as exc:
                problems.append(f"{spec.name.upper()}: {exc}")
        if not problems:
            problems = cls(**values).problems()
        if problems:
            raise SettingsError(f"{cls.__name__}: {'; '.join(problems)}")
        return cls(**values)

    def problems(self) -> list[str]:
        """What is wrong with values that each read well alone: ``NAME: why`` per problem."""
        return []
