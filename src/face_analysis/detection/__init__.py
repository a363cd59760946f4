"""Finding faces and cutting them out: the detectors (YuNet, Haar, whole image) behind one interface, and the crop
that turns a box into the square face a model was trained on.

May import: labels, errors, paths. Never TensorFlow or Keras."""
