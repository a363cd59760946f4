"""Who is who: the identity embedding of a face (the pretrained FaceNet, run by OpenVINO without TensorFlow) and
the clustering of many faces' embeddings into people (`run --people`, `FaceAnalyzer.embed` / `cluster_faces`).

Embeddings are biometric data: nothing here writes them anywhere; callers keep them in memory unless the user
asks for them. May import: detection (the crop), extras, errors, paths. Never TensorFlow or Keras."""
