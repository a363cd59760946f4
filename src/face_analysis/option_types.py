"""The value types of the command line's options: numbers in range, each refused with a usage error that says
what is expected."""
from __future__ import annotations

import argparse
import math


def number(kind, low, what: str, high=math.inf):
    """An argparse type: a finite number of `kind` from low to high, else a usage error saying what is expected."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


POSITIVE_INT = number(int, 1, "a whole number of at least 1")
COUNT = number(int, 0, "a whole number of at least 0")
PASSES = number(float, 0, "a number of passes of at least 0")
POSITIVE_SECONDS = number(float, 1e-3, "a positive number of seconds")
WIDEN = number(float, 0.5, "a crop factor of at least 0.5")
SHARE = number(float, 0, "a share from 0 to 1", high=1)
_FACTOR = number(float, 1, "'auto' or a factor from 1 to 4", high=4)


def UPSCALE(text: str) -> float | str:
    """--upscale: "auto" (detection.detectors.AUTO_UPSCALE) or a factor from 1 to 4."""
    return text if text == "auto" else _FACTOR(text)


port = number(int, 0, "a port number (0 to 65535)", high=65535)
