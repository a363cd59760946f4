"""A window showing annotated images or video frames, when this machine can open one.

Without a display (no DISPLAY or WAYLAND_DISPLAY on Linux) or with an OpenCV build without a GUI, nothing
is opened: `Window.available` is False, the caller warns once and goes on. Checking first matters: OpenCV's
Qt back end aborts the whole process when it cannot reach a display."""
from __future__ import annotations

import functools
import os
import sys

import cv2

TITLE = "Face Analysis"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc
MAX_SHOWN = (1280, 800)  # larger images are shown scaled down to fit a screen (the files keep full size)


@functools.cache
def why_no_window() -> str | None:
    """None when a window can be opened, else the reason in a few words."""
    if "GUI: NONE" in " ".join(cv2.getBuildInformation().split()):
        return "this OpenCV build has no GUI (install opencv-python, not opencv-python-headless)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are not set)"
    return None


class Window:
    """One named window; `show` returns the key pressed (-1 for none) or None when it cannot be shown."""

    def __init__(self, title: str = TITLE):
        self.title, self.opened = title, False
        self.available = why_no_window() is None

    def show(self, image_bgr, wait_ms: int = 0) -> int | None:
        if not self.available:
            return None
        height, width = image_bgr.shape[:2]
        scale = min(1.0, MAX_SHOWN[0] / width, MAX_SHOWN[1] / height)
        if scale < 1.0:
            size = (round(width * scale), round(height * scale))
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        try:
            if not self.opened:
                cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no toolbar
            cv2.imshow(self.title, image_bgr)
            self.opened = True
            if wait_ms > 0:
                return cv2.waitKey(wait_ms)
            while True:  # wait for a key in short steps, so that SIGTERM and Ctrl-C are handled meanwhile
                key = cv2.waitKey(50)
                if key >= 0 or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                    return key
        except cv2.error:
            self.available = False
            return None

    def close(self) -> None:
        if self.opened:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
            self.opened = False


def wants_quit(key: int | None) -> bool:
    return key is not None and key >= 0 and (key & 0xFF) in QUIT_KEYS
