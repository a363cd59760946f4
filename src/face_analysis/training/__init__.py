"""Training a model: TrainConfig, the Keras loop pieces (augmentation, tf.data, checkpoints), the two recipes,
tf.distribute strategies, and train()/quantize(), which save a model with its int8 files.

May import: data, analyzer and everything below; from evaluation only `evaluation.plots` (the data and
training-curve figures). TensorFlow and Keras are imported inside functions, so the package imports light."""
