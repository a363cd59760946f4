"""The window of `run --show` and `run --video` on a real X server (Xvfb): it opens with the tool's title,
shows boxes, q closes it and the results stay valid; without a display the run goes on without one."""
import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT

TOOLS = ("Xvfb", "xdotool", "import")
needs_x = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                             reason="needs Xvfb, xdotool and ImageMagick's import (Debian: xvfb xdotool imagemagick)")


@pytest.fixture(scope="module")
def display():
    """A virtual X server on a free display number."""
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as stream:
        number = stream.readline().strip()
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def start(display, *args):
    env = {**os.environ, "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def find_window(display, process, title="Face Analysis", timeout=120) -> str:
    """The id of the tool's window, once it is mapped."""
    env = {**os.environ, "DISPLAY": display}
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title], env=env,
                               capture_output=True, text=True).stdout.split()
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    raise AssertionError("no window appeared")


def green_pixels(display, window, path, timeout=30) -> int:
    """How many pure box-green pixels a screenshot of the window holds, once it has painted (polled: on a
    busy machine the first paint can take a while)."""
    env = {**os.environ, "DISPLAY": display}
    deadline, count = time.time() + timeout, 0
    while time.time() < deadline:
        subprocess.run(["import", "-window", window, str(path)], env=env, check=True, capture_output=True)
        shot = cv2.imread(str(path))
        count = int(np.all(shot == (0, 255, 0), axis=2).sum()) if shot is not None else 0
        if count > 80:
            break
        time.sleep(0.5)
    return count


def press(display, window, key="q"):
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xdotool", "key", "--window", window, key], env=env, check=True, capture_output=True)


@needs_x
def test_show_opens_a_window_with_boxes_and_q_closes_it(display, astronaut_jpg, tmp_path):
    target = tmp_path / "out.json"
    process = start(display, "--img", astronaut_jpg, astronaut_jpg, "--show", "--model_type", "normal",
                    "--json", target)
    window = find_window(display, process)
    assert green_pixels(display, window, tmp_path / "shot.png") > 80  # the face's box (1 px lines)
    press(display, window, "q")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    results = json.loads(target.read_text())
    assert len(results) == 1 and len(results[0]["faces"]) == 1  # q stopped before the second image


@needs_x
def test_video_window_shows_the_tracked_face_and_esc_ends_the_run(display, astronaut_jpg, tmp_path):
    target = tmp_path / "frames.json"
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[80:400, 160:480] = cv2.resize(cv2.imread(str(astronaut_jpg)), (320, 320))
    writer = cv2.VideoWriter(str(tmp_path / "long.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
    for _ in range(3000):  # far longer than the test waits
        writer.write(frame)
    writer.release()
    process = start(display, "--video", tmp_path / "long.mp4", "--model_type", "normal", "--json", target)
    window = find_window(display, process, "Face Analysis - ")
    assert green_pixels(display, window, tmp_path / "shot.png") > 80
    press(display, window, "Escape")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    results = json.loads(target.read_text())
    assert 0 < len(results) < 3000 and all(len(r["faces"]) == 1 for r in results)


def test_show_without_a_display_warns_and_goes_on(astronaut_jpg, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    target = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", "--img", str(astronaut_jpg),
                           "--show", "--model_type", "normal", "--json", str(target)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "warning: --show ignored: no display" in done.stderr and "Traceback" not in done.stderr
    assert len(json.loads(target.read_text())[0]["faces"]) == 1
