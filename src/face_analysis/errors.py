"""The errors the package raises on purpose. Each message names the file or argument at fault and the
reason, in one line; the command line prints it as it is (`UsageError` exits 2, the others 1)."""


class FaceAnalysisError(RuntimeError):
    """Base of every expected error: the message is meant for the user, no traceback needed."""


class UsageError(FaceAnalysisError):
    """The command line asks for something that cannot be done safely (exit status 2, as for argparse)."""


class ImageError(FaceAnalysisError):
    """An input image cannot be used; the message names the file and the reason."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class ModelError(FaceAnalysisError):
    """A saved model is missing, damaged, or does not match this version of the code."""


class DataError(FaceAnalysisError):
    """The training data cannot be used (missing, empty, unreadable or without labels)."""


class BackboneError(FaceAnalysisError):
    """The pretrained FaceNet file is missing or is not the expected one."""


class VideoError(FaceAnalysisError):
    """A camera, stream or video file cannot be opened or written."""
