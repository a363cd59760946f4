"""Every kind of bad input `run` meets: one clear line each, no traceback, the rest of the batch done."""
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from face_analysis.io import images as image_io


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is a few bytes."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def photo(astronaut_jpg):
    return cv2.imread(str(astronaut_jpg))


def make_bad_inputs(folder: Path, photo_bgr, astronaut_jpg) -> dict[str, str]:
    """Bad files and the reason each must be reported with (a folder scan skips the PDF: pass it by name)."""
    (folder / "text.jpg").write_text("hello, not a picture")
    (folder / "paper.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n")
    (folder / "zero.jpg").write_bytes(b"")
    data = astronaut_jpg.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "liar.png").write_bytes(png_claiming(100_000, 100_000))
    cv2.imwrite(str(folder / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    os.symlink(folder / "loop.jpg", folder / "loop.jpg")
    return {"text.jpg": "not an image", "paper.pdf": "not an image", "zero.jpg": "empty file",
            "truncated.jpg": "truncated JPEG", "liar.png": "too large", "dot.png": "too small",
            "loop.jpg": "cannot read"}


def make_good_variants(folder: Path, photo_bgr) -> list[str]:
    """The same face as 16-bit, grayscale, CMYK, RGBA images, and under awkward file names."""
    cv2.imwrite(str(folder / "deep16.png"), photo_bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "gray.jpg"), cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY))
    Image.fromarray(cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2RGB)).convert("CMYK").save(folder / "cmyk.jpg")
    cv2.imwrite(str(folder / "alpha.png"), cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2BGRA))
    for name in ("with space.jpg", "ünïcødé 顔.jpg", "-dash.jpg"):
        cv2.imwrite(str(folder / "tmp.jpg"), photo_bgr)
        os.replace(folder / "tmp.jpg", folder / name)
    return ["deep16.png", "gray.jpg", "cmyk.jpg", "alpha.png", "with space.jpg", "ünïcødé 顔.jpg", "-dash.jpg"]


def test_a_batch_of_bad_files_is_reported_and_the_good_ones_analysed(tmp_path, photo, astronaut_jpg, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    bad = make_bad_inputs(folder, photo, astronaut_jpg)
    good = make_good_variants(folder, photo)
    (folder / "empty_sub").mkdir()
    os.symlink(folder, folder / "back_to_top")  # a folder loop: not followed
    target = tmp_path / "out.json"
    code = run_cli("run", "--img", folder, tmp_path / "missing.jpg", tmp_path / "nothing_here", folder / "paper.pdf",
                   "--model_type", "normal", "--json", target, "--csv", tmp_path / "faces.csv")
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in error_lines), (name, reason, error_lines)
    assert any("missing.jpg: no such file or folder" in line for line in error_lines)
    assert any("nothing_here: no such file or folder" in line for line in error_lines)
    results = json.loads(target.read_text())
    by_name = {}
    for result in results:
        by_name.setdefault(Path(result["image"]).name, []).append(result)
    for name in good:
        [result] = by_name[name]
        assert result["error"] is None and len(result["faces"]) == 1, name
    for name in bad:
        assert all(r["faces"] == [] and r["error"] for r in by_name[name]), name
    assert len((tmp_path / "faces.csv").read_text().splitlines()) == 1 + len(good) + 0


def test_an_empty_folder_is_reported(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli("run", "--img", tmp_path / "empty", "--model_type", "normal") == 1
    assert "empty: folder holds no images" in capsys.readouterr().err


def test_a_huge_jpeg_is_decoded_at_a_reduced_size(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("L", (20000, 20000), 128).save(path, quality=50)
    image = image_io.load_image(path)
    assert image.shape[0] * image.shape[1] <= image_io.MAX_PIXELS and image.shape[2] == 3


def test_an_unreadable_file_is_reported(tmp_path, astronaut_jpg, monkeypatch, capsys):
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(astronaut_jpg.read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the read fail as it would for a user
        def guarded_open(path, *args, **kwargs):
            if Path(path).name == "locked.jpg":
                raise PermissionError(13, "denied")
            return open(path, *args, **kwargs)

        monkeypatch.setattr(image_io, "open", guarded_open, raising=False)
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", locked, astronaut_jpg, "--model_type", "normal", "--json", target) == 1
    assert "locked.jpg: permission denied" in capsys.readouterr().err
    assert [len(r["faces"]) for r in json.loads(target.read_text())] == [0, 1]


def test_unwritable_output_folder_still_analyses_and_writes_json(tmp_path, astronaut_jpg, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    target = tmp_path / "out.json"
    code = run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--output", blocker / "annotated",
                   "--json", target)
    assert code == 1
    assert "cannot write annotated images there" in capsys.readouterr().err
    assert len(json.loads(target.read_text())[0]["faces"]) == 1


def test_json_into_a_missing_folder_fails_before_any_work(tmp_path, astronaut_jpg, capsys):
    code = run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--json", tmp_path / "no" / "out.json")
    err = capsys.readouterr().err
    assert code == 1 and "does not exist" in err and "Traceback" not in err


def test_ctrl_c_mid_batch_keeps_the_results_so_far(tmp_path, astronaut_jpg, monkeypatch, capsys):
    from face_analysis import analyzer
    from face_analysis.runners import images as run_model

    count = run_model.MAX_BATCH_IMAGES + 4
    for i in range(count):
        (tmp_path / f"p{i:02d}.jpg").write_bytes(astronaut_jpg.read_bytes())
    real, calls = analyzer.FaceAnalyzer.predict_crops, []

    def interrupt_second_call(self, crops, batch_size=32):
        calls.append(len(crops))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, crops, batch_size)

    monkeypatch.setattr(analyzer.FaceAnalyzer, "predict_crops", interrupt_second_call)
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", tmp_path / "p*.jpg", "--model_type", "normal", "--json", target) == 130
    assert "interrupted" in capsys.readouterr().err
    names = [Path(r["image"]).name for r in json.loads(target.read_text())]
    assert names == [f"p{i:02d}.jpg" for i in range(run_model.MAX_BATCH_IMAGES)]


def test_video_faults(tmp_path, astronaut_jpg, capsys):
    assert run_cli("run", "--video", "9", "--model_type", "normal", "--output", tmp_path / "o.mp4") == 1
    assert "9: cannot open the camera" in capsys.readouterr().err
    assert run_cli("run", "--video", tmp_path / "none.mp4", "--model_type", "normal") == 1
    assert "none.mp4: no such video file" in capsys.readouterr().err
    from test_run import make_video

    make_video(tmp_path / "full.mp4", astronaut_jpg, frames=30)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # ends early
    target = tmp_path / "frames.json"
    code = run_cli("run", "--video", tmp_path / "cut.mp4", "--model_type", "normal", "--output",
                   tmp_path / "out.mp4", "--json", target)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 0:  # the readable frames were analysed
        assert len(json.loads(target.read_text())) > 0
    else:
        assert "cut.mp4" in err


def test_missing_or_damaged_model_says_how_to_restore(tmp_path, astronaut_jpg, capsys):
    assert run_cli("run", "--img", astronaut_jpg, "--model_path", tmp_path / "gone") == 1
    assert "gone: no such folder" in capsys.readouterr().err  # a mistyped path is not a damaged model
    (tmp_path / "empty").mkdir()
    assert run_cli("run", "--img", astronaut_jpg, "--model_path", tmp_path / "empty") == 1
    assert "git checkout saved_model" in capsys.readouterr().err


def test_one_odd_input_never_stops_the_batch(tmp_path, astronaut_jpg, capsys):
    """Extreme aspect ratio, a name longer than the system allows, a device, a FIFO (given and met in a
    folder scan), an empty path and a video: each is its own one-line error, the good photo is analysed."""
    folder = tmp_path / "scan"
    folder.mkdir()
    cv2.imwrite(str(folder / "strip.png"), np.full((20, 30000, 3), 90, np.uint8))
    os.mkfifo(folder / "pipe.jpg")
    os.mkfifo(tmp_path / "given.jpg")
    from test_run import make_video

    make_video(tmp_path / "clip.mp4", astronaut_jpg, frames=3)
    long_name = tmp_path / ("x" * 300 + ".jpg")
    target = tmp_path / "out.json"
    code = run_cli("run", "--img", folder, long_name, "/dev/zero", tmp_path / "given.jpg", "", tmp_path / "clip.mp4",
                   astronaut_jpg, "--model_type", "normal", "--json", target)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    expected = {"pipe.jpg": "not a regular file (a FIFO", "given.jpg": "not a regular file (a FIFO",
                "/dev/zero": "not a regular file (a device", "xxxx": "cannot read (File name too long)",
                "''": "empty path", "clip.mp4": "analyse it with --video"}
    for name, reason in expected.items():
        assert any(name in line and reason in line for line in errors), (name, errors)
    results = {Path(r["image"]).name: r for r in json.loads(target.read_text())}
    assert results["strip.png"]["error"] is None and results["strip.png"]["faces"] == []
    assert len(results["astronaut.jpg"]["faces"]) == 1
    assert len(errors) == len(expected)


def test_a_multi_page_tiff_says_only_its_first_page_is_read(tmp_path, photo, caplog):
    pages = [Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)), Image.new("RGB", (64, 64))]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    assert run_cli("run", "--img", tmp_path / "pages.tif", "--model_type", "normal") == 0
    assert "pages.tif: a TIFF of 2 pages; only the first page is analysed" in caplog.text


@pytest.mark.parametrize("args, message", [
    (["run", "--img", "x.jpg", "--refresh", "nan"], "is not a positive number of seconds"),
    (["run", "--img", "x.jpg", "--refresh", "-1"], "is not a positive number of seconds"),
    (["run", "--img", "x.jpg", "--min_face", "-3"], "is not a whole number of at least 0"),
    (["run", "--img", "x.jpg", "--detect_size", "big"], "is not a whole number of at least 0"),
    (["run", "--img", "x.jpg", "--upscale", "0.5"], "is not 'auto' or a factor from 1 to 4"),
    (["run", "--img", "x.jpg", "--upscale", "Auto"], "is not 'auto' or a factor from 1 to 4"),
    (["train", "--epochs", "0"], "is not a whole number of at least 1"),
    (["train", "--batch_size", "0"], "is not a whole number of at least 1"),
    (["train", "--head_epochs", "-1"], "is not a whole number of at least 0"),
    (["train", "--distill_from", "m", "--distill_weight", "1.5"], "is not a share from 0 to 1"),
    (["serve", "--port", "65536"], "is not a port number (0 to 65535)"),
])
def test_numbers_out_of_range_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        run_cli(*args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_distillation_weight_without_a_teacher_is_a_usage_error(capsys):
    assert run_cli("train", "--model_type", "normal", "--distill_weight", "0.8") == 2
    assert "--distill_weight is for --distill_from" in capsys.readouterr().err


def test_results_into_a_folder_is_a_usage_error(tmp_path, astronaut_jpg, capsys):
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--csv", tmp_path) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err


def test_video_reads_past_damaged_frames(tmp_path, astronaut_jpg, capsys):
    """An MJPEG video whose frames 22 to 25 are damaged: the other 56 are analysed, the 4 counted."""
    photo = cv2.resize(cv2.imread(str(astronaut_jpg)), (320, 320))
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 320))
    for i in range(60):
        writer.write(np.roll(photo, i, axis=1))
    writer.release()
    data = bytearray((tmp_path / "clip.avi").read_bytes())
    starts = [m.start() for m in __import__("re").finditer(rb"\xff\xd8\xff", bytes(data))]
    assert len(starts) == 60
    for start in starts[22:26]:
        for j in range(start + 200, start + 2000, 7):
            data[j] = (data[j] * 37 + 11) & 0xFF
    (tmp_path / "damaged.avi").write_bytes(bytes(data))
    target = tmp_path / "frames.json"
    assert run_cli("run", "--video", tmp_path / "damaged.avi", "--model_type", "normal", "--json", target,
                   "--output", tmp_path / "out.mp4") == 0
    assert len(json.loads(target.read_text())) == 56
    assert "damaged.avi: 4 unreadable frame(s) skipped" in capsys.readouterr().err


@pytest.mark.parametrize("source, message", [
    ("-1", "-1: not a camera index"),
    ("rtsp://127.0.0.1:9/none", "cannot open the stream"),
])
def test_cameras_and_streams_that_cannot_be_opened(source, message, tmp_path, capsys):
    assert run_cli("run", "--video", source, "--model_type", "normal", "--output", tmp_path / "o.mp4") == 1
    assert message in capsys.readouterr().err


def test_training_skips_empty_and_oversized_images(tiny_utk, tmp_path, caplog):
    import shutil

    from face_analysis.data import utk as utk_data

    folder = tmp_path / "utk"
    shutil.copytree(tiny_utk, folder)
    (folder / "30_0_0_20170101000000001.jpg.chip.jpg").write_bytes(b"")
    (folder / "31_1_1_20170101000000002.png").write_bytes(png_claiming(60000, 60000))
    with caplog.at_level("INFO"):
        dataset = utk_data.load_utkface([folder], 64, use_cache=False)
    assert len(dataset.frame) == 60
    assert "2 that do not decode" in caplog.text


def test_a_tampered_tflite_cache_is_rebuilt(tmp_path, astronaut_jpg, caplog):
    from face_analysis.models import compiled as lite_model
    from face_analysis.models import store as model_store

    directory = model_store.default_model_dir("normal")
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--precision", "float32",
                   "--json", tmp_path / "a.json") == 0
    path = lite_model.tflite_path(directory)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64, 4):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    caplog.clear()
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--precision", "float32",
                   "--json", tmp_path / "b.json") == 0
    assert "does not match its recorded sha256: rebuilding it" in caplog.text
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def test_a_weights_archive_bomb_is_refused_before_decompressing(tmp_path):
    """A small .npz whose member inflates far beyond its tensor's shape, with a manifest rewritten to match."""
    import hashlib
    import shutil
    import zipfile

    from face_analysis.models import store as model_store

    directory = tmp_path / "model"
    shutil.copytree(model_store.default_model_dir("normal"), directory)
    with zipfile.ZipFile(directory / "weights.npz") as archive:
        first = archive.namelist()[0]
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(directory / "weights.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data if name != first else data + b"\x00" * 200_000_000)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["weights.npz"] = hashlib.sha256((directory / "weights.npz").read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert (directory / "weights.npz").stat().st_size < 10_000_000
    with pytest.raises(model_store.ModelError, match="bytes, its shape"):
        model_store.load_model(directory, "normal")
