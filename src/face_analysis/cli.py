"""Face Analysis command line: the options of `run`, `train`, `evaluate`, `serve`, `quantize`, `calibrate` and
`report` (reporting.command's), and `main`, which turns every expected failure into one line and an exit status.
What each command does is in `commands`."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from face_analysis import __version__, commands
from face_analysis.train_options import add_train_options
from face_analysis.option_types import COUNT, POSITIVE_INT, POSITIVE_SECONDS, UPSCALE, number, port
from face_analysis.errors import FaceAnalysisError, UsageError
from face_analysis.labels import DEFAULT_PRECISION, MODEL_TYPES, PRECISIONS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter out of the output
PROG = "python src/main.py" if sys.argv and sys.argv[0].endswith("main.py") else "face-analysis"


def _add_inference_options(parser) -> None:
    """--precision and --tta: how run, evaluate and serve execute the model."""
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="int8: the model's quantized files (default; about twice as fast, the same answers for "
                             "about 99 %% of faces: see the README); float32: the full-precision export")
    parser.add_argument("--tta", action="store_true",
                        help="average each face's outputs with its mirror image's (test-time augmentation: twice "
                             "the time per face for under a point of accuracy; see the README)")


def _add_model_and_data(parser, force_help: str, data_required: bool = True) -> None:
    """--model_path, --data_path and --force of the commands that complete a saved model (quantize, calibrate)."""
    parser.add_argument("--model_path", type=Path, required=True, help="folder of the saved model")
    parser.add_argument("--data_path", nargs="+", type=Path, metavar="PATH", required=data_required,
                        help="the data the model was trained on (as given to train)")
    parser.add_argument("--force", action="store_true", help=force_help)


def build_parser() -> argparse.ArgumentParser:
    from face_analysis.analyzer import DEFAULT_MIN_FACE
    from face_analysis.detection.detectors import DEFAULT_DETECT_SIZE

    parser = argparse.ArgumentParser(
        prog=PROG, description="Find every face in photos or video and predict age, gender and race.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    common = argparse.ArgumentParser(add_help=False)  # --debug is accepted after the command too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    subcommands = parser.add_subparsers(dest="command", required=True,
                                        metavar="{run,train,evaluate,serve,quantize,calibrate,report}")

    run = subcommands.add_parser("run", parents=[common], help="analyse images, folders, a video file or a camera",
                                 description="Analyse images (--img) or video (--video) with a trained model.")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--img", nargs="+", metavar="PATH", help="image files, folders (searched recursively) or globs")
    source.add_argument("--video", nargs="?", const="0", metavar="SOURCE",
                        help="camera index (default 0), stream URL (rtsp://...) or video file")
    run.add_argument("--img_list", metavar="FILE",
                     help="images: a file listing image paths or URIs (s3://...), one a row: text (a path a line), "
                          "CSV or Parquet (the column 'path', else the first); with or without --img")
    run.add_argument("--model_type", choices=MODEL_TYPES,
                     help="which model (default: the type saved in --model_path, else facenet)")
    run.add_argument("--model_path", type=Path, help="folder of a saved model (default: saved_model/<type>_model)")
    run.add_argument("--detector", choices=("yunet", "haar", "none"), default="yunet",
                     help="yunet: the YuNet CNN detector (default); haar: OpenCV's Haar cascade; "
                          "none: each image is one already-cropped face")
    run.add_argument("--detect_size", type=COUNT, default=DEFAULT_DETECT_SIZE, metavar="PX",
                     help="images: the longest side, in pixels, the detector sees (larger finds smaller faces, "
                          "slower; 0: full size; default %(default)s)")
    run.add_argument("--upscale", type=UPSCALE, default="auto", metavar="F",
                     help="auto (default): a photo where a small face is seen is searched again enlarged 2 and 4 "
                          "times, which finds a crowd's faces of 16-32 px; a factor F (1 to 4): images smaller than "
                          "--detect_size are always enlarged up to F times for the detector (1: never)")
    run.add_argument("--min_face", type=COUNT, default=DEFAULT_MIN_FACE, metavar="PX",
                     help="faces whose box is smaller than this (longer side, pixels) are reported without age, "
                          "gender and race (default %(default)s)")
    run.add_argument("--threads", type=POSITIVE_INT, metavar="N",
                     help="threads for the model and OpenCV (default: the CPU cores this process may use)")
    _add_inference_options(run)
    run.add_argument("--json", metavar="FILE", help="write results as JSON ('-' for stdout)")
    run.add_argument("--csv", metavar="FILE", help="write one CSV row per face ('-' for stdout)")
    run.add_argument("--output", metavar="PATH",
                     help="images: folder for annotated copies, or a .jpg/.png file name for a single input; "
                          "video: annotated .mp4 file")
    run.add_argument("--show", action="store_true",
                     help="show results in a window (video shows one by default unless --output is given); "
                          "q or Esc quits")
    run.add_argument("--refresh", type=POSITIVE_SECONDS, default=0.5, metavar="SECONDS",
                     help="video: run the model again on each tracked face this often (default 0.5)")
    run.add_argument("--quiet", action="store_true", help="no per-face lines or progress bars")
    run.add_argument("--people", action="store_true", help="give each face a person number, the same for one person "
                     "within this run's results (the outputs are written once all is done; docs/people.md)")
    run.add_argument("--recurring", action="store_true",
                     help="with --people, for collections in which everyone appears several times (a staff, a "
                          "cast): a person of up to 3 faces is joined to the nearest larger one (a person's "
                          "unusual photos). Wrong where many people appear once: it joins them to others")
    run.add_argument("--embeddings", metavar="FILE", help="images, with --people: also write the faces' embeddings to "
                     "this .npz. WARNING: biometric data, which otherwise never leaves memory")
    scale = run.add_argument_group("many images (--img, --img_list)")
    scale.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process (default); ray: Ray Data batch inference, on this machine or "
                            "the Ray cluster of --ray_address (README: Running on a cluster)")
    scale.add_argument("--ray_address", metavar="ADDR",
                       help="engine ray: the cluster to join, e.g. 10.0.0.1:6379 or auto (default: $RAY_ADDRESS, "
                            "else a Ray instance started on this machine)")
    scale.add_argument("--parquet", metavar="DIR",
                       help="write results as Parquet files in this folder, one row per image (the fields of "
                            "--json, faces a nested list)")
    scale.add_argument("--parquet_rows", type=POSITIVE_INT, default=10_000, metavar="N",
                       help="rows per Parquet file (default %(default)s); a stopped run loses at most the file "
                            "being gathered, which --resume redoes")
    scale.add_argument("--resume", action="store_true",
                       help="skip the images already in the --parquet folder or --jsonl file (rerun the same "
                            "command after an interruption); the other outputs get them first; with --people, "
                            "give the earlier run's --embeddings file: its people keep their numbers")
    scale.add_argument("--jsonl", metavar="FILE", help="write results as JSON Lines: one object a line, each line "
                                                       "whole on disk as soon as its image is done")
    scale.add_argument("--read_timeout", type=POSITIVE_SECONDS, default=60.0, metavar="SECONDS",
                       help="URIs (s3://...): give up on a read after this long (default %(default)g)")

    train = subcommands.add_parser("train", parents=[common], help="train a model on UTKFace (and labelled photo sets)",
                                   description="Train a model on UTKFace and labelled photo sets such as FairFace, and "
                                               "save it (with its int8 files) under saved_model/.")
    add_train_options(train)

    evaluate = subcommands.add_parser("evaluate", parents=[common], help="evaluate a saved model",
                                      description="Evaluate a saved model on its test split or on any UTKFace-named "
                                                  "images.")
    evaluate.add_argument("--model_type", choices=MODEL_TYPES,
                          help="which model (default: the type saved in --model_path, else facenet)")
    evaluate.add_argument("--model_path", type=Path, help="folder of the saved model")
    evaluate.add_argument("--data_path", nargs="+", type=Path, metavar="PATH",
                          help="UTKFace folders or archives, and labelled photo sets (a folder or CSV with "
                               "file,age,gender,race, such as FairFace: evaluated through the detector, as run does)")
    evaluate.add_argument("--detector", choices=("yunet", "haar"), default="yunet",
                          help="labelled photo sets: the detector that finds each face (default yunet, as run)")
    evaluate.add_argument("--split", choices=("test", "val", "all"), default="test",
                          help="test: the test part of the saved split (default); val: its validation part; "
                               "all: every image given")
    _add_inference_options(evaluate)
    evaluate.add_argument("--json", metavar="FILE", help="write the figures as JSON ('-' for stdout)")
    evaluate.add_argument("--stats_dir", type=Path, help="where plots and reports go (default: statistics/)")
    serve = subcommands.add_parser("serve", parents=[common],
                                   help="analyse photos sent over HTTP (and a page to try it)",
                                   description="Serve POST /analyze (multipart field `image`), GET /health, the "
                                               "OpenAPI schema at /openapi.json and a page at / to try it in a "
                                               "browser.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=port, default=8000, help="port (default 8000; 0: any free port)")
    serve.add_argument("--model_type", choices=MODEL_TYPES,
                       help="which model (default: the type saved in --model_path, else facenet)")
    serve.add_argument("--model_path", type=Path, help="folder of a saved model (default: saved_model/<type>_model)")
    serve.add_argument("--detector", choices=("yunet", "haar", "none"), default="yunet", help="face detector")
    _add_inference_options(serve)
    serve.add_argument("--max_upload_mb", type=number(float, 0.001, "a positive number of megabytes"), default=20,
                       help="largest photo accepted, in MB (default 20); larger uploads get 413 as they arrive")
    serve.add_argument("--threads", type=POSITIVE_INT, metavar="N",
                       help="threads, and photos analysed at once (default: the CPU cores this process may use)")
    from face_analysis.models.compiled import AGREEMENT_IMAGES, CALIBRATION_IMAGES
    from face_analysis.reporting.calibration import MIN_FACES
    quantize = subcommands.add_parser("quantize", parents=[common], help="add the int8 files to a saved model",
                                      description="Quantize a saved model to int8 (what run uses by default) on "
                                                  f"{CALIBRATION_IMAGES} images of its training part, check it against "
                                                  f"float32 on {AGREEMENT_IMAGES} others and add the files to its "
                                                  "folder. train does this itself; this is for older models.")
    _add_model_and_data(quantize, "quantize with fewer training images than that (shared out alike; refused without)",
                        data_required=False)
    quantize.add_argument("--small_faces_from", type=Path, metavar="DIR",
                          help="instead: add the int8 part after the stem of this facenet model (trained with "
                               "--small_faces, the same stem) to --model_path, for faces under --small_faces_below")
    quantize.add_argument("--small_faces_below", type=POSITIVE_INT, default=40, metavar="PX",
                          help="with --small_faces_from: the face size (box's longer side) below which it answers "
                               "(default 40)")
    calibrate = subcommands.add_parser("calibrate", parents=[common], help="store what `report` corrects with",
                                       description="Run a saved model on the validation parts of its data (as evaluate "
                                                   "does) and store its predictions with the true labels in its folder "
                                                   "and manifest (calibration.npz), replacing any earlier one; at "
                                                   f"least {MIN_FACES} labelled faces. train does this itself; this is "
                                                   "for older models.")
    _add_model_and_data(calibrate, f"store fewer than {MIN_FACES} faces (refused without: report's corrections "
                                   "and intervals from so few do not hold)")
    from face_analysis.reporting import command as report_command

    report_command.add_parser(subcommands, parents=[common])
    return parser


def describe_error(error: BaseException) -> str:
    """One line for an error: the package's own errors and OS errors speak for themselves, others also name
    their type."""
    if isinstance(error, (FaceAnalysisError, ValueError, OSError)):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error} (rerun with --debug for the traceback)"


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that it ends as on Ctrl-C: outputs closed and valid."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_on_signal(signum, frame) -> None:
    for other in STOP_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.command == "run" else logging.INFO, format="%(message)s")
    run_command = {"run": commands.command_run, "train": commands.command_train,
                   "evaluate": commands.command_evaluate, "serve": commands.command_serve,
                   "quantize": commands.command_quantize, "calibrate": commands.command_calibrate,
                   "report": commands.command_report}[args.command]
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _stop_on_signal) for signum in STOP_SIGNALS}
    else:
        previous = {}
    try:
        return run_command(args)
    except Stopped as stop:
        print(f"stopped by {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - every failure becomes one line unless --debug
        if args.debug:
            raise
        print(f"error: {describe_error(error)}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None) -> int:
    """The command line; a process whose URI reads never answered ends at once, its outputs closed and valid:
    waiting for those reads (pyarrow's clean-up at exit does) could take for ever. Not when called in-process."""
    status = _main(argv)
    from face_analysis.io import remote

    if argv is None and remote.reads_in_flight():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
