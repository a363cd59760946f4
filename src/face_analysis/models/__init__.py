"""The two model families: the Keras architectures and the FaceNet backbone (training side), the manifest-checked
model store, and the compiled OpenVINO models that `run` and `serve` execute.

May import: labels, errors, paths. `compiled` and `store` are TF-free to import (Keras only inside the functions
that build or load a Keras model)."""
