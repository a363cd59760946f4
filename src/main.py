"""Face Analysis command line: `run` a trained model on images or video, `train` one, `evaluate` one."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter out of the output
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL_TYPES = ("facenet", "normal")

import paths  # noqa: E402 - after the sys.path entry above


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python src/main.py", description="Find every face in photos or video and predict age, gender and race.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,train,evaluate}")

    run = commands.add_parser("run", help="analyse images, folders, a video file or a camera",
                              description="Analyse images (--img) or video (--video) with a trained model.")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--img", nargs="+", metavar="PATH", help="image files, folders (searched recursively) or globs")
    source.add_argument("--video", nargs="?", const="0", metavar="SOURCE",
                        help="camera index (default 0) or video file")
    run.add_argument("--model_type", choices=MODEL_TYPES, default="facenet", help="which model (default: facenet)")
    run.add_argument("--model_path", type=Path, help="folder of a saved model (default: saved_model/<type>_model)")
    run.add_argument("--detector", choices=("yunet", "haar", "none"), default="yunet",
                     help="yunet: the YuNet CNN detector (default); haar: OpenCV's Haar cascade; "
                          "none: each image is one already-cropped face")
    run.add_argument("--json", metavar="FILE", help="write results as JSON ('-' for stdout)")
    run.add_argument("--csv", metavar="FILE", help="write one CSV row per face ('-' for stdout)")
    run.add_argument("--output", metavar="PATH",
                     help="images: folder for annotated copies; video: annotated .mp4 file")
    run.add_argument("--show", action="store_true",
                     help="show results in a window (video shows one by default unless --output is given)")
    run.add_argument("--refresh", type=float, default=0.5, metavar="SECONDS",
                     help="video: run the model again on each tracked face this often (default 0.5)")
    run.add_argument("--quiet", action="store_true", help="no per-face lines or progress bar")

    train = commands.add_parser("train", help="train a model on UTKFace",
                                description="Train a model on UTKFace and save it under saved_model/.")
    train.add_argument("--model_type", choices=MODEL_TYPES, default="facenet", help="which model (default: facenet)")
    train.add_argument("--data_path", nargs="+", type=Path, metavar="PATH",
                       help="UTKFace folders or .tar.gz archives (default: dataset_1.tar.gz dataset_2.tar.gz)")
    train.add_argument("--epochs", type=int, help="training epochs (default: facenet 4 fine-tuning, normal 20)")
    train.add_argument("--head_epochs", type=int, default=2,
                       help="facenet: epochs training the heads on the frozen backbone first (default 2)")
    train.add_argument("--batch_size", type=int, default=64, help="batch size (default 64)")
    train.add_argument("--model_path", type=Path, help="where to save (default: saved_model/<type>_model)")
    train.add_argument("--distill_from", type=Path, metavar="DIR",
                       help="normal: a saved model (e.g. saved_model/facenet_model) whose predictions on the "
                            "training images are mixed into the targets (knowledge distillation)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--eval", action="store_true", help="evaluate on the test split afterwards")
    train.add_argument("--stats_dir", type=Path, help="where plots and reports go (default: statistics/)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model",
                                   description="Evaluate a saved model on its test split or on any UTKFace-named images.")
    evaluate.add_argument("--model_type", choices=MODEL_TYPES, default="facenet", help="which model (default: facenet)")
    evaluate.add_argument("--model_path", type=Path, help="folder of the saved model")
    evaluate.add_argument("--data_path", nargs="+", type=Path, metavar="PATH", help="UTKFace folders or archives")
    evaluate.add_argument("--split", choices=("test", "all"), default="test",
                          help="test: the model's saved test split (default); all: every image given")
    evaluate.add_argument("--json", metavar="FILE", help="write the figures as JSON ('-' for stdout)")
    evaluate.add_argument("--stats_dir", type=Path, help="where plots and reports go (default: statistics/)")
    return parser


def command_run(args) -> int:
    from analyzer import FaceAnalyzer

    if args.refresh <= 0:
        raise ValueError("--refresh must be a positive number of seconds")
    analyzer = FaceAnalyzer(args.model_type, args.model_path, args.detector)
    if args.video is not None:
        import video_run

        show = args.show or args.output is None
        summary = video_run.run_video(analyzer, args.video, args.output, args.json, args.csv, show, args.refresh)
        print(f"{summary.frames} frames at {summary.fps:.1f} frames/s, {summary.model_runs} face analyses",
              file=sys.stderr)
        return 0
    import run_model

    summary = run_model.run_images(analyzer, args.img, args.json, args.csv, args.output, args.show, args.quiet)
    if not args.quiet:
        print(f"{summary.images} image(s), {summary.faces} face(s), {summary.failed} failed", file=sys.stderr)
    return 1 if summary.failed else 0


def _write_json(data, target: str) -> None:
    import json

    import results_io

    stream = results_io.open_output(target)
    stream.write(json.dumps(data, indent=2) + "\n")
    if stream is not sys.stdout:
        stream.close()


def command_evaluate(args) -> int:
    import evaluate_model

    metrics = evaluate_model.evaluate(args.model_type, args.model_path, args.data_path, args.split,
                                      args.stats_dir or paths.STATS_DIR)
    print(f"{args.model_type}: age MAE {metrics['age_mae']:.2f} years, gender {metrics['gender_accuracy']:.1%}, "
          f"race {metrics['race_accuracy']:.1%} on {metrics['images']} images", file=sys.stderr)
    if args.json:
        _write_json(metrics, args.json)
    return 0


def command_train(args) -> int:
    import train_model

    stats_dir = args.stats_dir or paths.STATS_DIR
    config = train_model.TrainConfig(
        model_type=args.model_type, data_paths=args.data_path or list(paths.DEFAULT_DATA_PATHS),
        epochs=args.epochs, batch_size=args.batch_size, model_dir=args.model_path, resume=args.resume,
        seed=args.seed, head_epochs=args.head_epochs, stats_dir=stats_dir, distill_from=args.distill_from)
    try:
        model_dir = train_model.train(config)
    except KeyboardInterrupt:
        print("interrupted: the last epoch's checkpoint is kept; continue with --resume", file=sys.stderr)
        return 130
    print(f"saved {args.model_type} model to {model_dir}", file=sys.stderr)
    if args.eval:
        import evaluate_model

        metrics = evaluate_model.evaluate(args.model_type, model_dir, config.data_paths, "test", stats_dir)
        print(f"test split: age MAE {metrics['age_mae']:.2f} years, gender {metrics['gender_accuracy']:.1%}, "
              f"race {metrics['race_accuracy']:.1%}", file=sys.stderr)
    return 0


def describe_error(error: BaseException) -> str:
    """One line for an error: expected ones speak for themselves, others also name their type."""
    expected = ("ImageError", "ModelError", "DataError", "BackboneError", "VideoError")
    if type(error).__name__ in expected or isinstance(error, (ValueError, OSError)):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error} (rerun with --debug for the traceback)"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.command == "run" else logging.INFO, format="%(message)s")
    commands = {"run": command_run, "train": command_train, "evaluate": command_evaluate}
    try:
        if not args.debug and args.command != "run":  # run uses LiteRT and never imports TensorFlow
            from lite_model import quiet_stderr

            with quiet_stderr():  # TensorFlow's C++ start-up notes
                import keras  # noqa: F401
                import tensorflow  # noqa: F401
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure becomes one line unless --debug
        if args.debug:
            raise
        print(f"error: {describe_error(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
