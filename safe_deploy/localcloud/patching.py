"""Every replacement the local cloud makes in moto, recorded so that stopping undoes it.

The local cloud extends moto by replacing methods and module attributes. moto's state is process
wide, so a stopped local cloud must leave moto as it found it (tests that use plain ``mock_aws``
may run in the same process afterwards).
"""

from __future__ import annotations

from typing import Any

_MISSING = object()
_originals: dict[tuple[int, str], tuple[Any, str, Any]] = {}


def replace(owner: Any, name: str, value: Any) -> None:
    """``setattr(owner, name, value)``, remembering what was there first."""
    key = (id(owner), name)
    if key not in _originals:
        current = (
            owner.__dict__.get(name, _MISSING)
            if isinstance(owner, type)
            else getattr(owner, name, _MISSING)
        )
        _originals[key] = (owner, name, current)
    setattr(owner, name, value)


def restore_all() -> None:
    """Put back everything ``replace`` changed."""
    for owner, name, value in _originals.values():
        if value is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)
    _originals.clear()
