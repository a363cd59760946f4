"""Face Analysis: find every face in photos or video and predict age, gender and race.

    from face_analysis import FaceAnalyzer
    analyzer = FaceAnalyzer()                      # the shipped facenet model, the YuNet detector
    for face in analyzer.analyze("photo.jpg"):     # a path, an RGB NumPy array or a PIL image
        print(face.box, face.age, face.gender, face.race)

Importing this package, the analyser and `run`'s code never imports TensorFlow."""
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
    if name in ("FaceAnalyzer", "FacePrediction", "ImageResult"):
        from face_analysis import analyzer

        return getattr(analyzer, name)
    raise AttributeError(f"module 'face_analysis' has no attribute {name!r}")


__all__ = ["FaceAnalyzer", "FacePrediction", "ImageResult", "__version__"]
