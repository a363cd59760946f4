"""Where the project keeps things: the shipped models, the Haar cascade, statistics and caches.

They live in the project's folder (the clone, for `pip install -e .` or `python src/main.py`), which
FACE_ANALYSIS_HOME overrides (for a `pip install .` into site-packages: point it at the clone). Caches go to
FACE_ANALYSIS_CACHE, else `.cache/` in the project's folder when it is writable, else the user's cache folder."""
import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent.parent  # the clone, when the package runs from src/
REPO_ROOT = Path(os.environ.get("FACE_ANALYSIS_HOME") or _SOURCE_ROOT)
IS_PROJECT_FOLDER = (REPO_ROOT / "saved_model").is_dir()  # False for a plain `pip install .` without the setting
HOME_HINT = ("the shipped models are not beside this installation: use `pip install -e .` from a clone, or set "
             "FACE_ANALYSIS_HOME to the clone's folder")
SAVED_MODEL_DIR = REPO_ROOT / "saved_model"
STATS_DIR = REPO_ROOT / "statistics"
STATS_ENTRIES = ("data_stats", "model_metrics")  # the folders train and evaluate write into a stats folder
STATS_README_TITLE = "# Statistics of the shipped models"  # the first line of the README evaluate writes there
HAAR_XML = REPO_ROOT / "xml" / "haarcascade_frontalface_alt2.xml"
DEFAULT_DATA_PATHS = (REPO_ROOT / "dataset_1.tar.gz", REPO_ROOT / "dataset_2.tar.gz")


def _cache_dir() -> Path:
    """FACE_ANALYSIS_CACHE, else .cache/ in the project's folder when it (or that .cache) can be written, else
    the user's cache folder."""
    if os.environ.get("FACE_ANALYSIS_CACHE"):
        return Path(os.environ["FACE_ANALYSIS_CACHE"])
    local = REPO_ROOT / ".cache"
    if IS_PROJECT_FOLDER and os.access(local if local.exists() else REPO_ROOT, os.W_OK):
        return local
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "face-analysis"


# decoded images, cached features, checkpoints and TFLite exports; read as paths.CACHE_DIR at call time
CACHE_DIR = _cache_dir()
CACHE_WRITES = True  # False in tf.distribute workers other than the chief: they read caches, never write them
