"""Hostile `run --img` (issue 39): every format the decoder reads in a folder scan and what is skipped named, one
model a results file, file names that are not UTF-8, the Haar cascade in xml/, a quiet editable install, Ctrl-C
of a local Ray run, libjpeg's warnings with the file's name, --detect_size and --output checked."""
import json
import os
import shutil
import site
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT, ctrl_c, default_sigint, run_cli
from face_analysis import paths
from face_analysis.io import images as image_io
from face_analysis.io import writers as results_io

RUN = ("--model_type", "normal")
HEIC = struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0mif1heic" + bytes(100)  # a HEIC's header, no pixels
NOT_UTF8 = b"\xff\xfeface.jpg"


@pytest.fixture
def photo(astronaut_jpg) -> np.ndarray:
    return cv2.imread(str(astronaut_jpg))


def corrupt_jpeg(astronaut_jpg) -> bytes:
    """A JPEG that decodes whole but makes libjpeg print "Corrupt JPEG data: 1 extraneous bytes ..."."""
    data = astronaut_jpg.read_bytes()
    return data[:-2] + b"\x00\x01\x02\x03" + data[-2:]


def test_a_folder_scan_reads_what_the_decoder_reads_and_names_what_it_skips(tmp_path, astronaut_jpg, photo, caplog):
    folder = tmp_path / "phone"
    folder.mkdir()
    shutil.copy(astronaut_jpg, folder / "a.jpg")
    shutil.copy(astronaut_jpg, folder / "b.jfif")
    Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)).save(folder / "c.gif")
    assert cv2.imwrite(str(folder / "d.avif"), photo)
    (folder / "phone.heic").write_bytes(HEIC)
    (folder / "notes.txt").write_text("not a photo")
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", folder, *RUN, "--json", target) == 0
    results = json.loads(target.read_text())
    assert [Path(r["image"]).name for r in results] == ["a.jpg", "b.jfif", "c.gif", "d.avif"]
    assert all(len(r["faces"]) == 1 for r in results)
    assert ("phone: 2 file(s) skipped: notes.txt (not a format this tool reads), phone.heic (not a format this tool "
            "reads)") in caplog.text


def test_an_unreadable_folder_or_subfolder_says_permission_denied(tmp_path, astronaut_jpg, monkeypatch, capsys):
    folder = tmp_path / "photos"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked2").mkdir()
    shutil.copy(astronaut_jpg, folder / "a.jpg")
    shutil.copy(astronaut_jpg, folder / "locked" / "b.jpg")
    scandir = os.scandir

    def guarded_scandir(path):  # as for a user without read permission (root reads anything)
        if Path(path).name.startswith("locked"):
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", folder, folder / "locked2", *RUN, "--json", target) == 1
    err = capsys.readouterr().err
    assert f"error: {folder / 'locked'}: permission denied" in err
    assert f"error: {folder / 'locked2'}: permission denied" in err and "holds no images" not in err
    assert [r["error"] for r in json.loads(target.read_text())] == [None, "permission denied", "permission denied"]


def test_heic_and_a_float_tiff_say_unsupported_format(tmp_path, photo, capfd):
    (tmp_path / "phone.heic").write_bytes(HEIC)
    Image.fromarray(photo[..., 0].astype(np.float32) / 255).save(tmp_path / "float.tiff")
    assert run_cli("run", "--img", tmp_path / "phone.heic", tmp_path / "float.tiff", *RUN) == 1
    err = capfd.readouterr().err
    assert "phone.heic: unsupported format (HEIC/HEIF: convert it to JPEG)" in err
    assert "float.tiff: unsupported format (a TIFF of 32-bit samples)" in err
    assert "not an image" not in err and "TIFFRGBAImageOK" not in err  # OpenCV's own note, without a file name


@pytest.mark.parametrize("option", ["--jsonl", "--parquet"])
def test_resume_refuses_the_results_of_another_model(tmp_path, astronaut_jpg, capsys, option):
    target = tmp_path / ("r.jsonl" if option == "--jsonl" else "pq")
    assert run_cli("run", "--img", astronaut_jpg, option, target, "--quiet") == 0  # the default: facenet
    other = tmp_path / "y.jpg"
    shutil.copy(astronaut_jpg, other)
    before = sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*"))
    assert run_cli("run", "--img", other, option, target, "--resume", *RUN) == 2
    err = capsys.readouterr().err
    assert f"error: {option} {target}: holds results of the facenet model; --resume with the normal model" in err
    assert sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*")) == before
    assert run_cli("run", "--img", other, option, target, "--resume", "--model_type", "facenet", "--quiet") == 0


def test_a_name_that_is_not_utf8_is_analysed_and_written_escaped(tmp_path, astronaut_jpg, capsys):
    folder = tmp_path / "camera"
    folder.mkdir()
    shutil.copy(astronaut_jpg, folder / "a.jpg")
    odd = os.fsencode(folder) + b"/" + NOT_UTF8
    shutil.copy(astronaut_jpg, odd)
    out = {name: tmp_path / name for name in ("out.json", "out.csv", "out.jsonl", "pq")}
    assert run_cli("run", "--img", folder, *RUN, "--json", out["out.json"], "--csv", out["out.csv"],
                   "--jsonl", out["out.jsonl"], "--parquet", out["pq"]) == 0
    escaped = f"{folder}/\\xff\\xfeface.jpg"
    assert f"{escaped}: 1 face(s)" in capsys.readouterr().out
    written = [[r["image"] for r in json.loads(out["out.json"].read_text())],
               [json.loads(line)["image"] for line in out["out.jsonl"].read_text().splitlines()],
               [r["image"] for r in results_io.read_parquet_results(out["pq"])],
               [line.split(",")[0] for line in out["out.csv"].read_text().splitlines()[1:]]]
    assert written == [[str(folder / "a.jpg"), escaped]] * 4
    assert os.fsencode(results_io.unescaped_name(escaped)) == odd  # reversible
    assert run_cli("run", "--img", folder, *RUN, "--jsonl", out["out.jsonl"], "--resume") == 0
    assert "resuming: 2 image(s) done before, 0 to go" in capsys.readouterr().err
    assert len(out["out.jsonl"].read_text().splitlines()) == 2


def test_control_characters_in_a_name_are_escaped_on_the_terminal_only(tmp_path, astronaut_jpg, capsys):
    name = tmp_path / "two\nlines\x1b[2J.jpg"
    shutil.copy(astronaut_jpg, name)
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", name, *RUN, "--json", target) == 0
    assert f"{tmp_path}/two\\nlines\\x1b[2J.jpg: 1 face(s)" in capsys.readouterr().out
    assert json.loads(target.read_text())[0]["image"] == str(name)


def test_the_haar_cascade_is_in_xml_at_the_top_of_the_clone():
    assert paths.HAAR_XML == REPO_ROOT / "xml" / "haarcascade_frontalface_alt2.xml" and paths.HAAR_XML.is_file()
    try:
        tracked = subprocess.run(["git", "ls-files", "--", "*.xml"], cwd=REPO_ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git clone")
    assert [name for name in tracked if name.endswith("haarcascade_frontalface_alt2.xml")] == [
        "xml/haarcascade_frontalface_alt2.xml"]


def test_an_editable_install_is_quiet_and_finds_the_cascade_in_the_clone(tmp_path):
    pytest.importorskip("setuptools")
    clone = tmp_path / "clone"
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "xml", "saved_model/facenet_model/manifest.json",
                 "saved_model/normal_model/manifest.json"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy)(REPO_ROOT / name, clone / name)
    shutil.copytree(REPO_ROOT / "src", clone / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "_parent.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))  # setuptools
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                           "--no-index", "--no-build-isolation", "-e", str(clone)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Editable installation" not in done.stdout + done.stderr
    found = subprocess.run([str(python), "-c", "from face_analysis import paths; print(paths.HAAR_XML)"],
                           capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": ""}, timeout=120)
    assert found.stdout.strip() == str(clone / "xml" / "haarcascade_frontalface_alt2.xml"), found.stderr


def local_ray_children(pid: int) -> set[int]:
    """The processes a driver started (its local Ray instance)."""
    children = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return children


def test_ctrl_c_of_a_local_ray_run_ends_it_and_its_ray_instance(tmp_path, astronaut_jpg):
    pytest.importorskip("ray")
    from test_hostile_batch import EndlessServer

    server = EndlessServer()
    listed, target = tmp_path / "list.txt", tmp_path / "ray.json"
    listed.write_text(f"{astronaut_jpg}\n{server.uri()}\n")
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    command = [sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", "--engine", "ray", *RUN, "--quiet",
               "--img_list", str(listed), "--json", str(target), "--read_timeout", "600"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=default_sigint)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not server.connections and process.poll() is None:
            time.sleep(0.2)
        assert server.connections, "no read task asked the server"
        children = local_ray_children(process.pid)
        err, took = ctrl_c(process)
    finally:
        server.close()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert took < 20, took
    assert "Traceback" not in err and isinstance(json.loads(target.read_text()), list)
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.5)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "the local Ray instance outlived its run"


def test_libjpeg_warnings_name_the_file(tmp_path, astronaut_jpg, capfd):
    folder = tmp_path / "photos"
    folder.mkdir()
    damaged, whole = corrupt_jpeg(astronaut_jpg), astronaut_jpg.read_bytes()
    for i in range(12):  # read two at a time: the damaged ones are told apart from their neighbours
        (folder / f"p{i:02d}.jpg").write_bytes(damaged if i % 4 == 1 else whole)
    assert run_cli("run", "--img", folder, *RUN, "--quiet") == 0
    err = capfd.readouterr().err
    assert [line.split(":")[1].strip() for line in err.splitlines() if line.startswith("warning:")] == [
        str(folder / name) for name in ("p01.jpg", "p05.jpg", "p09.jpg")]
    assert "p05.jpg: Corrupt JPEG data: 1 extraneous bytes before marker 0xd9 (decoded as far as the data goes)" in err
    assert "\nCorrupt JPEG data" not in "\n" + err  # libjpeg's own line, without a name, is not printed


def test_a_detect_size_too_small_to_find_a_face_is_refused(astronaut_jpg, capsys):
    assert run_cli("run", "--img", astronaut_jpg, *RUN, "--detect_size", "1") == 2
    err = capsys.readouterr().err
    assert "--detect_size 1: too small to find a face; give at least 32 pixels (0: full size)" in err


def test_output_with_a_tiff_name_is_one_file_and_other_image_names_are_refused(tmp_path, astronaut_jpg, capsys):
    assert run_cli("run", "--img", astronaut_jpg, *RUN, "--output", tmp_path / "out.tiff") == 0
    assert (tmp_path / "out.tiff").is_file() and cv2.imread(str(tmp_path / "out.tiff")).shape == (512, 512, 3)
    assert run_cli("run", "--img", astronaut_jpg, *RUN, "--output", tmp_path / "out.gif") == 2
    assert "--output " + str(tmp_path / "out.gif") + ": annotated images are written as" in capsys.readouterr().err
    assert not (tmp_path / "out.gif").exists()
    assert run_cli("run", "--img", astronaut_jpg, *RUN, "--output", tmp_path / "out.tiff") == 0  # ours: replaced
    assert image_io.load_image(tmp_path / "out.tiff").shape == (512, 512, 3)


def test_annotated_copies_keep_a_name_that_is_not_utf8(tmp_path, astronaut_jpg):
    folder = tmp_path / "camera"
    folder.mkdir()
    shutil.copy(astronaut_jpg, os.fsencode(folder) + b"/" + NOT_UTF8)
    code = subprocess.run([sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", "--img", str(folder), *RUN,
                           "--output", str(tmp_path / "annotated"), "--quiet"], capture_output=True, timeout=300)
    assert code.returncode == 0, code.stderr  # cv2.imwrite crashed the process on such a name (SIGSEGV)
    assert os.listdir(os.fsencode(tmp_path / "annotated")) == [NOT_UTF8]


def test_output_inside_a_scanned_input_folder_is_refused(tmp_path, astronaut_jpg, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(astronaut_jpg, folder / "a.jpg")
    assert run_cli("run", "--img", folder, *RUN, "--output", folder / "annotated") == 2
    err = capsys.readouterr().err
    assert f"--output {folder / 'annotated'}: is inside the input folder {folder}" in err
    assert not (folder / "annotated").exists()


def test_links_to_folders_and_macos_metadata_are_named_in_the_scan(tmp_path, astronaut_jpg, caplog):
    folder = tmp_path / "usb"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(astronaut_jpg, folder / "sub" / "a.jpg")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07" + bytes(100))  # AppleDouble: not a photo
    os.symlink(folder / "sub", folder / "again")
    os.symlink(folder, folder / "sub" / "loop")
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", folder, *RUN, "--json", target) == 0
    assert [r["image"] for r in json.loads(target.read_text())] == [str(folder / "sub" / "a.jpg")]
    assert ("usb: 3 file(s) skipped: ._a.jpg (macOS metadata), again/ (a link to a folder, not followed), "
            "sub/loop/ (a link to a folder, not followed)") in caplog.text


def test_a_video_name_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys):
    """OpenCV's video capture and writer crashed the process (SIGSEGV) on such a name."""
    video = os.path.join(os.fsencode(tmp_path), b"clip\xff.mp4")
    writer = cv2.VideoWriter(str(tmp_path / "ok.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    shutil.copy(tmp_path / "ok.mp4", video)
    assert run_cli("run", "--video", os.fsdecode(video), *RUN, "--output", tmp_path / "out.mp4") == 1
    assert "clip\\xff.mp4: a file name that is not UTF-8" in capsys.readouterr().err
    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out\xfe.mp4"))
    assert run_cli("run", "--video", tmp_path / "ok.mp4", *RUN, "--output", out) == 1
    assert "out\\xfe.mp4: a file name that is not UTF-8" in capsys.readouterr().err
