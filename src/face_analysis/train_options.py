"""The options of `train` (the command line's; what they do is in training.config and docs/train.md)."""
from __future__ import annotations

from pathlib import Path

from face_analysis.labels import DEFAULT_DISTILL_WEIGHT, DEFAULT_EPOCHS, FACENET_STAGES, MODEL_TYPES
from face_analysis.option_types import COUNT, PASSES, POSITIVE_INT, SHARE, WIDEN
from face_analysis.training.distribution import STRATEGIES


def add_train_options(train) -> None:
    """Add train's options to its argparse parser."""
    train.add_argument("--model_type", choices=MODEL_TYPES, default="facenet", help="which model (default: facenet)")
    train.add_argument("--data_path", nargs="+", type=Path, metavar="PATH",
                       help="UTKFace folders or .tar.gz archives and labelled photo sets (a folder with a CSV "
                            "file,age,gender,race such as ../shared/data/FairFace), in any mix "
                            "(default: dataset_1.tar.gz dataset_2.tar.gz)")
    train.add_argument("--epochs", type=POSITIVE_INT,
                       help=f"training epochs (default: facenet {DEFAULT_EPOCHS['facenet']} fine-tuning, "
                            f"normal {DEFAULT_EPOCHS['normal']})")
    train.add_argument("--head_epochs", type=COUNT, default=None,
                       help="facenet: epochs training the heads on the frozen backbone first (default 1)")
    train.add_argument("--fine_tune_from", choices=FACENET_STAGES, default=None,
                       help="facenet: the first FaceNet stage that learns; the stages before it are frozen and "
                            "their output cached once (default mixed_7a: Mixed_7a and the Block8 stage; block8 "
                            "fine-tunes Block8 alone in about half the time per epoch, block17_6 also the last "
                            "five 8x8 blocks in about the same time in all (no better on validation), block35 "
                            "more of FaceNet in about 3 times)")
    train.add_argument("--whole_epochs", type=PASSES, default=None, metavar="N",
                       help="facenet: passes over the training images fine-tuning the whole network end to end at "
                            "the end, in bfloat16 where the CPU (AVX-512 BF16, AMX) or a GPU computes it; a fraction "
                            "is allowed (default 0; about 70 min a pass on 2 CPU cores)")
    train.add_argument("--init_from", type=Path, metavar="DIR",
                       help="facenet: start from this saved facenet model's weights, architecture and crop instead "
                            "of the phases on cached maps (with --whole_epochs)")
    train.add_argument("--augmented_copies", type=COUNT, default=None,
                       help="facenet: augmented copies of each training image whose features are cached "
                            "(default 1; each costs one FaceNet pass over the training part)")
    train.add_argument("--small_faces", type=SHARE, default=None,
                       help="the share of augmented faces shrunk to the crop of a 14-41 px face, JPEG-compressed "
                            "and enlarged again, so that the model learns crowds' small faces (default 0)")
    train.add_argument("--crop_widen", type=WIDEN, default=None,
                       help="photo sets: the detector's chip crop widened by this factor, saved with the model "
                            "and used by run (default: benchmarks/crop_choice.py's choice)")
    train.add_argument("--batch_size", type=POSITIVE_INT, default=64,
                       help="batch size (per replica with --distribute; default 64)")
    train.add_argument("--model_path", type=Path,
                       help="where to save (default: saved_model/<type>_model); an existing folder is replaced "
                            "only when it holds a model saved by this tool")
    train.add_argument("--distill_from", type=Path, metavar="DIR",
                       help="normal: a saved model (e.g. saved_model/facenet_model) whose predictions on the "
                            "training images are mixed into the targets (knowledge distillation)")
    train.add_argument("--distill_weight", type=SHARE, default=None,
                       help="with --distill_from: the teacher's share of the targets, the true labels' the rest "
                            f"(default {DEFAULT_DISTILL_WEIGHT})")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--eval", action="store_true", help="evaluate on the test split afterwards")
    train.add_argument("--stats_dir", type=Path, help="where plots and reports go (default: statistics/)")
    train.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    train.add_argument("--no_balance_groups", dest="balance_groups", action="store_false",
                       help="do not oversample the photo sets' rare race group x gender x age cells (by default each "
                            "is drawn up to the median cell's size, at most 3 times: fairer gender accuracy across "
                            "race groups on validation, docs/train.md)")
    train.add_argument("--distribute", choices=STRATEGIES, default="none",
                       help="none: one device (default); mirrored: every local GPU, or the --devices; multi_worker: "
                            "the machines of the TF_CONFIG variable, each running this same command (README: "
                            "Training on several GPUs or machines). --batch_size is per replica; learning rates "
                            "grow with the square root of the global batch")
    train.add_argument("--devices", nargs="+", metavar="DEVICE",
                       help="mirrored: the devices, e.g. GPU:0 GPU:1 (CPU:0 CPU:1 splits the CPU in two, for trying "
                            "it without GPUs)")
