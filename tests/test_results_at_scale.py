"""Many images with the local engine: --img_list files, --parquet results, --resume after a killed run."""
import csv
import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import REPO_ROOT, photo_folder, run_cli
from face_analysis.io import images as image_io
from face_analysis.io import lists as image_lists
from face_analysis.io import writers as results_io
from face_analysis.errors import UsageError


@pytest.fixture
def photos(tmp_path, astronaut_jpg):
    """40 copies of a face photo, a broken JPEG and an empty file."""
    return photo_folder(tmp_path / "photos", astronaut_jpg, 40)


def test_image_lists_in_text_csv_and_parquet(tmp_path):
    paths = ["a.jpg", "dir/b c.png", "s3://bucket/c.jpg"]
    (tmp_path / "list.txt").write_text("# my photos\n" + "\n".join(paths[:2]) + "\n\n" + paths[2] + "\n")
    with open(tmp_path / "list.csv", "w", newline="") as file:
        csv.writer(file).writerows([["id", "path"], *[[i, p] for i, p in enumerate(paths)], [9, ""]])
    pd.DataFrame({"path": paths}).to_parquet(tmp_path / "list.parquet")
    for name in ("list.txt", "list.csv", "list.parquet"):
        assert image_lists.read_image_list(tmp_path / name) == paths, name
    with pytest.raises(UsageError, match="no such file"):
        image_lists.read_image_list(tmp_path / "missing.txt")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(UsageError, match="bad.parquet: cannot read the list"):
        image_lists.read_image_list(tmp_path / "bad.parquet")


def test_uri_paths_are_read_through_pyarrow(astronaut_jpg):
    assert image_io.load_image(astronaut_jpg.as_uri()).shape == image_io.load_image(astronaut_jpg).shape
    with pytest.raises(image_io.ImageError, match="no such file"):
        image_io.load_image(astronaut_jpg.with_name("missing.jpg").as_uri())


def test_parquet_holds_the_json_objects_and_img_list_adds_images(photos, tmp_path, astronaut_jpg):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{astronaut_jpg}\n{tmp_path / 'nowhere.jpg'}\n")
    target, folder = tmp_path / "out.json", tmp_path / "parquet"
    assert run_cli("run", "--img", photos, "--img_list", listed, "--model_type", "normal", "--json", target,
                   "--parquet", folder, "--parquet_rows", 7, "--quiet") == 1  # the broken files fail
    expected = json.loads(target.read_text())
    assert len(expected) == 44 and expected[-1]["error"] == "no such file"
    assert len(results_io.parquet_files(folder)) == 7  # 44 rows, 7 a file
    assert results_io.read_parquet_results(folder) == expected
    table = pd.read_parquet(folder)  # what pandas, DuckDB or Spark see
    assert len(table) == 44 and set(table.columns) == {"image", "model", "width", "height", "faces", "error"}


def test_parquet_folder_guards(photos, tmp_path, capsys):
    folder = tmp_path / "parquet"
    folder.mkdir()
    (folder / "mine.txt").write_text("x")
    assert run_cli("run", "--img", photos, "--model_type", "normal", "--parquet", folder) == 2
    assert "did not write (mine.txt)" in capsys.readouterr().err
    assert run_cli("run", "--img", photos, "--model_type", "normal", "--resume") == 2
    assert "give --parquet DIR" in capsys.readouterr().err
    (folder / "mine.txt").unlink()
    assert run_cli("run", "--img", photos / "p00.jpg", "--model_type", "normal", "--parquet", folder) == 0
    assert run_cli("run", "--img", photos / "p00.jpg", "--model_type", "normal", "--parquet", folder) == 2
    assert "add --resume" in capsys.readouterr().err


def test_resume_after_a_killed_run_completes_without_duplicates_or_gaps(photos, tmp_path):
    folder, target = tmp_path / "parquet", tmp_path / "out.json"
    command = [sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", "--img", photos, "--model_type", "normal",
               "--parquet", folder, "--parquet_rows", 3]
    process = subprocess.Popen([str(c) for c in command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(results_io.parquet_files(folder)) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = results_io.read_parquet_results(folder)
    assert 6 <= len(before) < 42, "the run was not killed half-way"
    rc = subprocess.run([str(c) for c in command + ["--resume", "--json", target, "--quiet"]], check=False, capture_output=True,
                        text=True)
    assert rc.returncode == 1, rc.stderr  # the two broken files
    assert f"resuming: {len(before)} image(s) done before, {42 - len(before)} to go" in rc.stderr
    rows = results_io.read_parquet_results(folder)
    names = sorted(str(p) for p in photos.iterdir())
    assert sorted(row["image"] for row in rows) == names  # every image once
    assert sorted(row["image"] for row in json.loads(target.read_text())) == names
    assert rows[:len(before)] == before  # the earlier files are kept as they were
