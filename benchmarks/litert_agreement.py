"""Do the LiteRT (TFLite) models that `run` uses predict what the Keras models predict?

Runs both on the model's saved test split and reports class agreement and age differences.

    python benchmarks/litert_agreement.py --model_type facenet --data_path ../shared/data/UTKFace
"""
import argparse

import numpy as np
import pandas as pd

from face_analysis import build_model, evaluate_model, lite_model, model_store, train_model
from face_analysis.labels import MAX_AGE


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_type", nargs="+", default=["normal", "facenet"])
    parser.add_argument("--data_path", nargs="+", default=["../shared/data/UTKFace"])
    args = parser.parse_args()
    ages = np.arange(MAX_AGE + 1)
    for model_type in args.model_type:
        directory = model_store.default_model_dir(model_type)
        keras_model, info = model_store.load_model(directory, model_type)
        lite, _ = lite_model.load_lite_model(directory, model_type)
        split = pd.read_csv(directory / "split.csv", dtype={"sha256": str})
        data = train_model.prepare_data(args.data_path, info["input_size"])
        images = data.images[evaluate_model.select_rows(data.frame, split, "test")]
        expected = evaluate_model.predict(build_model.inference_model(keras_model), images)
        got = {k: [] for k in expected}
        for start in range(0, len(images), 64):
            batch = lite(images[start:start + 64].astype(np.float32))
            for key in got:
                got[key].append(batch[key])
        got = {k: np.concatenate(v) for k, v in got.items()}
        age_difference = np.abs(expected["age"] @ ages - got["age"] @ ages)
        print(f"{model_type}: {len(images)} test images; same gender {np.mean(expected['gender'].argmax(1) == got['gender'].argmax(1)):.2%}, "
              f"same race {np.mean(expected['race'].argmax(1) == got['race'].argmax(1)):.2%}; "
              f"age difference mean {age_difference.mean():.4f}, max {age_difference.max():.4f} years")


if __name__ == "__main__":
    main()
