"""Where the project keeps things: the shipped models, the Haar cascade, statistics and caches.

The shipped models are found, in this order: in FACE_ANALYSIS_HOME's saved_model/ when that is set; in the
clone's saved_model/ when the package runs from a clone's src/ (`pip install -e .`, `python src/main.py`);
else inside the installed package (a wheel carries them as face_analysis/shipped_models/, read through
importlib.resources). The Haar cascade is in the clone's xml/ (the original project's layout), which a wheel
carries as face_analysis/xml/.
A project folder (FACE_ANALYSIS_HOME or the clone) also holds statistics/, the data sets and .cache/; an
installed package is never written into: there, those default to the current folder and the caches go to the
user's cache folder. FACE_ANALYSIS_CACHE overrides the cache folder in every case."""
import os
from importlib import resources
from pathlib import Path

PACKAGE_DATA = Path(str(resources.files("face_analysis"))).resolve()  # the package's folder: src/ or site-packages
SHIPPED_MODELS_PACKAGE = PACKAGE_DATA / "shipped_models"  # where a wheel puts the clone's saved_model/


def _project_folder() -> Path | None:
    """FACE_ANALYSIS_HOME, else the clone this package runs from (src/face_analysis beside saved_model/),
    else None (an installed package)."""
    if os.environ.get("FACE_ANALYSIS_HOME"):
        return Path(os.environ["FACE_ANALYSIS_HOME"])
    root = PACKAGE_DATA.parent.parent
    if PACKAGE_DATA.parent.name == "src" and (root / "saved_model").is_dir():
        return root
    return None


PROJECT_FOLDER = _project_folder()
IS_INSTALLED = PROJECT_FOLDER is None  # models read from the installed package, nothing written beside them


def _current_folder() -> Path:
    try:
        return Path.cwd()
    except OSError:  # the current folder was removed
        return Path.home()


REPO_ROOT = PROJECT_FOLDER or _current_folder()  # data sets and statistics: the project's folder, else the current one
SAVED_MODEL_DIR = SHIPPED_MODELS_PACKAGE if IS_INSTALLED else REPO_ROOT / "saved_model"
IS_PROJECT_FOLDER = SAVED_MODEL_DIR.is_dir()  # the shipped models are there (False: a wheel built without them)
HOME_HINT = ("the shipped models are not beside this installation: install the wheel built by `python -m build` "
             "from a clone, use `pip install -e .` there, or set FACE_ANALYSIS_HOME to the clone's folder")
# where `train` saves by default: saved_model/ of the project's folder, or of the current folder for an installed
# package (never into site-packages)
TRAIN_MODEL_DIR = REPO_ROOT / "saved_model"
STATS_DIR = REPO_ROOT / "statistics"
STATS_ENTRIES = ("data_stats", "model_metrics")  # the folders train and evaluate write into a stats folder
STATS_README_TITLE = "# Statistics of the shipped models"  # the first line of the README evaluate writes there


def _haar_xml(name: str = "haarcascade_frontalface_alt2.xml") -> Path:
    """xml/ of the clone this package runs from (src/face_analysis beside xml/), else the wheel's face_analysis/xml/."""
    clone = PACKAGE_DATA.parent.parent / "xml" / name
    return clone if PACKAGE_DATA.parent.name == "src" and clone.is_file() else PACKAGE_DATA / "xml" / name


HAAR_XML = _haar_xml()
YUNET_ONNX = PACKAGE_DATA / "resources" / "yunet_n.onnx"  # ShiqiYu/libfacedetection.train's onnx/yunet_n_dynamic.onnx
DEFAULT_DATA_PATHS = (REPO_ROOT / "dataset_1.tar.gz", REPO_ROOT / "dataset_2.tar.gz")


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "face-analysis"


def _cache_dir() -> Path:
    """FACE_ANALYSIS_CACHE, else .cache/ in the project's folder when it (or that .cache) can be written, else
    the user's cache folder (always for an installed package)."""
    if os.environ.get("FACE_ANALYSIS_CACHE"):
        return Path(os.environ["FACE_ANALYSIS_CACHE"])
    if PROJECT_FOLDER is not None and IS_PROJECT_FOLDER:
        local = PROJECT_FOLDER / ".cache"
        if os.access(local if local.exists() else PROJECT_FOLDER, os.W_OK):
            return local
    return user_cache_dir()


# decoded images, cached features, checkpoints and TFLite exports; read as paths.CACHE_DIR at call time
CACHE_DIR = _cache_dir()
CACHE_WRITES = True  # False in tf.distribute workers other than the chief: they read caches, never write them
