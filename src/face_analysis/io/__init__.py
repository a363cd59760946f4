"""Files in and out: images decoded with clear errors, result writers (JSON, CSV, Parquet), drawing, the
display window, and the guard that checks every output path against every input before any work.

May import: results, detection, models, labels, errors, paths. Never TensorFlow or Keras."""
