"""Does the int8 model that `run` uses by default give the float model's answers, and how much faster is it?

On the model's saved split (test by default), the Keras model (float32, TensorFlow), the float32 TFLite export
and the int8 files (both compiled by OpenVINO, as `run` executes them) each predict every image; reported: how
often int8 and float32 agree with Keras on gender and race, their age differences, each one's accuracy and
age MAE, and the ms per face of both compiled models at batch 1 and 32 (one process, same threads).

    python benchmarks/precision_agreement.py --model_type normal facenet --data_path ../shared/data/UTKFace
"""
import argparse
import time

import numpy as np

from face_analysis.data import prepare
from face_analysis.data.prepare import prepare_data, select_rows
from face_analysis.evaluation.metrics import predict
from face_analysis.labels import MAX_AGE, PRECISIONS
from face_analysis.models import compiled as lite_model
from face_analysis.models import store as model_store

AGES = np.arange(MAX_AGE + 1)


def ms_per_face(model, size: int, batch: int, repeats: int = 7) -> float:
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3)).astype(np.float32)
    model(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(images)
        times.append((time.perf_counter() - start) / batch * 1000)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_type", nargs="+", default=["normal", "facenet"])
    parser.add_argument("--model_path", help="a saved model folder instead of the shipped one (one model type)")
    parser.add_argument("--data_path", nargs="+", default=["../shared/data/UTKFace"])
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = parser.parse_args()
    print("| model | images | int8 = Keras: gender / race | age difference mean / max (years) | float32 = Keras: "
          "gender / race | accuracy gender / race, Keras / float32 / int8 | age MAE Keras / float32 / int8 | "
          "ms/face float32 / int8, batch 1 | batch 32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model_type in args.model_type:
        directory = args.model_path or model_store.default_model_dir(model_type)
        keras_model, info = model_store.load_model(directory, model_type)
        compiled = {p: lite_model.load_lite_model(directory, model_type, precision=p)[0] for p in PRECISIONS}
        split = prepare.read_split(directory)
        data = prepare_data(args.data_path, info["input_size"], crop_widen=info["crop_widen"])
        rows = select_rows(data.frame, split, args.split)
        images, frame = data.images[rows], data.frame.iloc[rows]
        outputs = {"keras": predict(keras_model.predict_on_batch, images)}
        outputs.update({p: predict(compiled[p], images) for p in ("float32", "int8")})
        age = {k: v["age"] @ AGES for k, v in outputs.items()}

        int8, float32 = (lite_model.agreement_figures(outputs["keras"], outputs[p]) for p in ("int8", "float32"))
        def accuracy(key):
            return " / ".join(f"{np.mean(outputs[n][key].argmax(1) == frame[key].to_numpy()):.2%}" for n in outputs)

        exact = (frame["age_lo"] == frame["age_hi"]).to_numpy() if "age_lo" in frame else np.ones(len(frame), bool)
        mae = " / ".join(f"{np.abs(age[n] - frame['age'].to_numpy())[exact].mean():.3f}" for n in outputs)
        speed = [" / ".join(f"{ms_per_face(compiled[p], info['input_size'], b):.2f}" for p in ("float32", "int8"))
                 for b in (1, 32)]
        print(f"| {model_type} | {len(images)} | {int8['same_gender']:.2%} / {int8['same_race']:.2%} | "
              f"{int8['age_difference']:.3f} / {int8['largest_age_difference']:.2f} | {float32['same_gender']:.2%} / "
              f"{float32['same_race']:.2%} | gender {accuracy('gender')}; race {accuracy('race')} | {mae} | "
              f"{speed[0]} | {speed[1]} |", flush=True)


if __name__ == "__main__":
    main()
