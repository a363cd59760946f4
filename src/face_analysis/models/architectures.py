"""The two architectures, normal (a CNN from scratch) and facenet (pretrained FaceNet plus heads).

Edit this file to change a model. Both take RGB images with values 0..255 (the scaling is inside the
model) and return a dict of softmax outputs: "age" over 0..MAX_AGE years, "gender" and "race"."""
from __future__ import annotations

import keras
from keras import layers, ops

from face_analysis.labels import FACENET_STAGES, GENDERS, INPUT_SIZES, LEGACY_FACENET_STAGE, MAX_AGE, MODEL_TYPES, RACES
from face_analysis.models import facenet_backbone

AGE_SIGMA = 2.0  # width in years of the soft age target
AGE_MAE_WEIGHT = 0.05
STEM_NAME, TAIL_NAME, HEADS_NAME = "facenet_stem", "facenet_tail", "heads"
# Where FaceNet is split into a frozen stem and a fine-tuned tail: the graph node whose output the tail takes.
# "block35": after the first six convolutions (the 17x17 stage, Mixed_6a, the 8x8 stage, Mixed_7a and the
# Block8 stage are fine-tuned); "block17_6": after the fifth of the ten 8x8 blocks (the other five, Mixed_7a
# and Block8); "mixed_7a": after the 8x8 stage; "block8": only the 3x3 Block8 stage.
FACENET_SPLITS = dict(zip(FACENET_STAGES, ("InceptionResnetV1/Conv2d_4b_3x3/Relu",
                                            "InceptionResnetV1/Repeat_1/block17_5/Relu",
                                            "InceptionResnetV1/Repeat_1/block17_10/Relu",
                                            "InceptionResnetV1/Mixed_7a/concat")))


def build_heads(feature_size: int, hidden: int = 256, dropout: float = 0.3) -> keras.Model:
    """Three branches (age, gender, race) on a pooled feature vector, each Dense-ReLU-Dropout-softmax."""
    features = keras.Input((feature_size,), name="features")
    outputs = {}
    for name, classes in (("age", MAX_AGE + 1), ("gender", len(GENDERS)), ("race", len(RACES))):
        x = layers.Dropout(dropout, name=f"{name}_dropout_in")(features)
        x = layers.Dense(hidden, activation="relu", name=f"{name}_hidden")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
        # float32 outputs under a mixed precision policy too: the losses need their small probabilities
        outputs[name] = layers.Dense(classes, activation="softmax", name=name, dtype="float32")(x)
    return keras.Model(features, outputs, name=HEADS_NAME)


def build_normal_model(input_size: int = INPUT_SIZES["normal"]) -> keras.Model:
    """A compact VGG-style CNN trained from random weights: 7 conv layers with batch norm, then the heads."""
    image = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="scale")(image)
    for block, (filters, convs) in enumerate(((32, 1), (64, 2), (128, 2), (256, 2))):
        for i in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}_{i}")(x)
            x = layers.BatchNormalization(name=f"bn{block}_{i}")(x)
            x = layers.ReLU(name=f"relu{block}_{i}")(x)
        if block < 3:
            x = layers.MaxPooling2D(name=f"pool{block}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(image, build_heads(256, hidden=128)(x), name="normal")


def build_facenet_parts(input_size: int = INPUT_SIZES["facenet"], fine_tune_from: str = LEGACY_FACENET_STAGE):
    """(stem, tail, heads): FaceNet up to the split named by fine_tune_from (kept frozen), the rest of it up to
    the last Block8 (fine-tuned), and the heads on the average-pooled 1792-d Block8 output."""
    split = FACENET_SPLITS[fine_tune_from]
    stem = facenet_backbone.build_backbone_part(end=split, input_shape=(input_size, input_size, 3))
    stem.name = STEM_NAME
    stem.trainable = False
    tail = facenet_backbone.build_backbone_part(start=split, input_shape=stem.output.shape[1:])
    tail.name = TAIL_NAME
    return stem, tail, build_heads(1792)


def facenet_from_features(tail: keras.Model, heads: keras.Model) -> keras.Model:
    """The trainable part of the facenet model, taking cached feature maps of the frozen stem."""
    maps = keras.Input(tail.input.shape[1:], name="stem_maps")
    return keras.Model(maps, heads(layers.GlobalAveragePooling2D(name="pool")(tail(maps))), name="facenet_top")


def build_facenet_model(input_size: int = INPUT_SIZES["facenet"], parts=None) -> keras.Model:
    """The full facenet model: image -> FaceNet scaling -> stem -> tail -> pool -> heads."""
    stem, tail, heads = parts or build_facenet_parts(input_size)
    image = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1 / 128.0, offset=-127.5 / 128.0, name="scale")(image)
    x = layers.GlobalAveragePooling2D(name="pool")(tail(stem(x)))
    return keras.Model(image, heads(x), name="facenet")


def build_model(model_type: str, fine_tune_from: str = LEGACY_FACENET_STAGE) -> keras.Model:
    """Build the named architecture ("facenet", split at fine_tune_from, or "normal")."""
    if model_type == "facenet":
        return build_facenet_model(parts=build_facenet_parts(fine_tune_from=fine_tune_from))
    if model_type == "normal":
        return build_normal_model()
    raise ValueError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")


def expected_age(distribution):
    """Mean of an age distribution over 0..MAX_AGE (works on numpy arrays and tensors)."""
    return ops.sum(distribution * ops.arange(MAX_AGE + 1, dtype="float32"), axis=-1)


def _interval(y_true):
    """(lo, hi) columns of an age target given as an interval of whole years (lo == hi for an exact age)."""
    y_true = ops.cast(y_true, "float32")
    return y_true[:, :1], y_true[:, 1:2]


def _age_target(y_true):
    """A Gaussian soft label of width AGE_SIGMA around an exact age (given as the interval [age, age])."""
    ages = ops.arange(MAX_AGE + 1, dtype="float32")
    target = ops.exp(-0.5 * ops.square((ages - _interval(y_true)[0]) / AGE_SIGMA))
    return target / ops.sum(target, axis=-1, keepdims=True)


def _distance_to_interval(age, y_true):
    """How many years an age lies outside the target: |age - target| for exact ages, 0 inside an interval."""
    lo, hi = _interval(y_true)
    lo, hi = ops.reshape(lo, (-1,)), ops.reshape(hi, (-1,))
    return ops.maximum(ops.maximum(lo - age, age - hi), 0.0)


@keras.saving.register_keras_serializable(package="face_analysis")
def age_loss(y_true, y_pred):
    """Exact ages (lo == hi) and distributions: cross-entropy against the target distribution. Age groups
    (lo < hi, e.g. FairFace's "20-29"): minus the log of the probability mass the prediction puts inside the
    interval. Both plus a small L1 between the predicted mean age and the target."""
    probabilities = ops.clip(y_pred, 1e-7, 1.0)
    if y_true.shape[-1] == MAX_AGE + 1:
        target = ops.cast(y_true, "float32")
        cross_entropy = -ops.sum(target * ops.log(probabilities), axis=-1)
        return cross_entropy + AGE_MAE_WEIGHT * ops.abs(expected_age(y_pred) - expected_age(target))
    lo, hi = _interval(y_true)
    ages = ops.arange(MAX_AGE + 1, dtype="float32")
    inside = ops.cast((ages >= lo) & (ages <= hi), "float32")
    interval_loss = -ops.log(ops.clip(ops.sum(y_pred * inside, axis=-1), 1e-7, 1.0))
    exact_loss = -ops.sum(_age_target(y_true) * ops.log(probabilities), axis=-1)
    is_interval = ops.reshape(hi > lo, (-1,))
    return (ops.where(is_interval, interval_loss, exact_loss)
            + AGE_MAE_WEIGHT * _distance_to_interval(expected_age(y_pred), y_true))


@keras.saving.register_keras_serializable(package="face_analysis")
def years_mae(y_true, y_pred):
    """Years between the predicted mean age and the target: the true age, outside an age group's interval
    (0 inside it), or a target distribution's mean."""
    if y_true.shape[-1] == MAX_AGE + 1:
        return ops.abs(expected_age(y_pred) - expected_age(ops.cast(y_true, "float32")))
    return _distance_to_interval(expected_age(y_pred), y_true)


def compile_model(model: keras.Model, learning_rate, soft_targets: bool = False) -> None:
    """Adam with the losses and metrics of the three heads; soft_targets when gender and race targets are
    probability vectors (distillation) instead of class indices."""
    classification = "categorical_crossentropy" if soft_targets else "sparse_categorical_crossentropy"
    accuracy = "categorical_accuracy" if soft_targets else "accuracy"
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss={"age": age_loss, "gender": classification, "race": classification},
        metrics={"age": [years_mae], "gender": [accuracy], "race": [accuracy]},
    )
