"""The optional parts of the install: a command that needs an extra which is not installed says which one, in
one line (a UsageError: exit status 2), before it imports anything heavy."""
from __future__ import annotations

import importlib.util

from face_analysis.errors import UsageError


def missing(*modules: str) -> list[str]:
    """The top-level modules among `modules` that cannot be imported here (looked up, not imported)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(command: str, extra: str, *modules: str) -> None:
    """Raise UsageError naming the extra to install when any of `modules` is missing."""
    absent = missing(*modules)
    if absent:
        raise UsageError(f"{command} needs the [{extra}] extra ({', '.join(absent)} not installed): "
                         f"pip install 'face-analysis[{extra}]'")
