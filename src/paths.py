"""Where the project keeps things, relative to the repository rather than the working directory."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAVED_MODEL_DIR = REPO_ROOT / "saved_model"
STATS_DIR = REPO_ROOT / "statistics"
STATS_ENTRIES = ("data_stats", "model_metrics", "README.md")  # what train and evaluate write into a stats folder
HAAR_XML = REPO_ROOT / "xml" / "haarcascade_frontalface_alt2.xml"
DEFAULT_DATA_PATHS = (REPO_ROOT / "dataset_1.tar.gz", REPO_ROOT / "dataset_2.tar.gz")
# decoded images, cached features, checkpoints and TFLite exports; read as paths.CACHE_DIR at call time
CACHE_DIR = Path(os.environ.get("FACE_ANALYSIS_CACHE") or REPO_ROOT / ".cache")
