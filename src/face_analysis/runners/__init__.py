"""The engines behind `run`: images (thread pool, input order, annotated copies), video (with face tracking),
and Ray Data batch inference; each reads inputs, calls the analyser and writes through io.

May import: analyzer, data-level and everything below it; not training, evaluation, serving or reporting.
Never TensorFlow or Keras."""
