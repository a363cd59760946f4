"""What a training run is asked to do: TrainConfig, with the defaults chosen on validation."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from face_analysis import paths
from face_analysis.labels import DEFAULT_DISTILL_WEIGHT, DEFAULT_EPOCHS
from face_analysis.models import store as model_store

DEFAULT_FINE_TUNE_FROM = "mixed_7a"  # chosen on validation; about an hour on 2 cores with UTKFace and FairFace (README)
DEFAULT_CROP_WIDEN = 1.25  # chosen by benchmarks/crop_choice.py on FairFace's validation part (README)


@dataclass
class TrainConfig:
    model_type: str = "facenet"
    data_paths: list[Path] = field(default_factory=lambda: list(paths.DEFAULT_DATA_PATHS))
    epochs: int | None = None  # facenet: fine-tuning epochs after the head warm-up
    batch_size: int = 64
    model_dir: Path | None = None
    resume: bool = False
    seed: int = 0
    balance_groups: bool = True  # photo sets: oversample race group x gender x age cells (utk.balance_groups)
    head_epochs: int = 1
    augmented_copies: int = 1  # facenet: augmented versions of each training image whose features are cached
    small_faces: float = 0.0  # the share of augmented faces shrunk to a small face's crop (loop.make_augmenter)
    stats_dir: Path | None = None
    use_cache: bool = True
    distill_from: Path | None = None  # normal: a saved model whose predictions are mixed into the targets
    distill_weight: float = DEFAULT_DISTILL_WEIGHT  # the teacher's share of those targets
    fine_tune_from: str = DEFAULT_FINE_TUNE_FROM  # facenet: where the frozen stem ends (architectures.FACENET_SPLITS)
    init_from: Path | None = None  # facenet: a saved model whose weights replace the phases on cached maps
    whole_epochs: float = 0.0  # facenet: passes of whole-network fine-tuning at the end (whole_network.py)
    crop_widen: float = DEFAULT_CROP_WIDEN  # photos: the detector's chip crop widened by this factor
    distribute: str = "none"  # none, mirrored or multi_worker (distribution.make_distribution)
    devices: list[str] | None = None  # mirrored: the devices (default: every local GPU)

    def __post_init__(self):
        self.data_paths = [Path(p) for p in self.data_paths]
        self.init_from = Path(self.init_from) if self.init_from else None
        self.model_dir = Path(self.model_dir) if self.model_dir else model_store.default_model_dir(self.model_type, for_writing=True)
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS[self.model_type]
