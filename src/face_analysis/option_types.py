"""The value types of the command line's options: numbers in range, each refused with a usage error that says
what is expected."""
from __future__ import annotations

import argparse
import math


def number(kind, low, what: str):
    """An argparse type: a finite number of `kind` >= low, else a usage error saying what is expected."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


POSITIVE_INT = number(int, 1, "a whole number of at least 1")
WIDEN = number(float, 0.5, "a crop factor of at least 0.5")


def port(text: str) -> int:
    value = number(int, 0, "a port number (0 to 65535)")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return value


COUNT = number(int, 0, "a whole number of at least 0")
POSITIVE_SECONDS = number(float, 1e-3, "a positive number of seconds")
