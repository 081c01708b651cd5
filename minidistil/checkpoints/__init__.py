"""Checkpoints: files in, `(config, {name: array})` out, and back.

    files (safetensors, .bin, sharded) ──► loading.py ──► bare names (schema.py) ──► the model classes
    tf_model.h5 (tf_h5.py), flax_model.msgpack (flax_msgpack.py): renamed by framework_names.py
    model.onnx (onnx_graph.py): weights recovered through the graph
                                                  └── bert.py: BERT layout converted to DistilBERT
    saving.py: config.json + model.safetensors the reference loads; `convert`

schema.py owns every parameter name and shape and the tie rule; the readers
(safetensors_io.py, torch_bin.py, tf_h5.py, flax_msgpack.py, onnx_graph.py) never run code from a file.
"""

from .loading import load_checkpoint, load_state_dict
from .saving import convert, save_checkpoint
from .schema import check_tensors, expected_shapes

__all__ = ["check_tensors", "convert", "expected_shapes", "load_checkpoint", "load_state_dict", "save_checkpoint"]
