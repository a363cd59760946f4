"""Face Analysis: find every face in photos or video and predict age, gender and race.

    from face_analysis import FaceAnalyzer
    analyzer = FaceAnalyzer()                      # the shipped facenet model, the YuNet detector
    for face in analyzer.analyze("photo.jpg"):     # a path, an RGB NumPy array or a PIL image
        print(face.box, face.age, face.gender, face.race)

Importing this package, the analyser and `run`'s code never imports TensorFlow.

The layout, top to bottom (imports point downward only; .importlinter checks it):
    cli, commands                    the command line, and what each command does
    runners/, serving/               the engines of `run` (images, video, Ray) and the HTTP door of `serve`
    training/, evaluation/           training a model; evaluating one as `run` executes it
    reporting/                       reports on written results
    analyzer.py, data/               FaceAnalyzer (the library's door); labelled data sets
    io/                              images in, results out, the display, the output guard
    detection/, models/, results.py  detectors and crops; architectures, the model store, compiled models; results
    labels, errors, paths, extras    what every part agrees on"""
from importlib import metadata


def _version() -> str:
    """The installed version, or pyproject.toml's when run from a checkout that is not installed."""
    try:
        return metadata.version("face-analysis")
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent.parent / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


__version__ = _version()


def __getattr__(name: str):
    """FaceAnalyzer and its result dataclasses, imported when first asked for (so `--help` stays fast)."""
    if name == "FaceAnalyzer":
        from face_analysis.analyzer import FaceAnalyzer

        return FaceAnalyzer
    if name in ("FacePrediction", "ImageResult"):
        from face_analysis import results

        return getattr(results, name)
    raise AttributeError(f"module 'face_analysis' has no attribute {name!r}")


__all__ = ["FaceAnalyzer", "FacePrediction", "ImageResult", "__version__"]
