"""Modeling: the DistilBERT network and its classes, in NumPy.

    config.py          DistilBertConfig: the reference's fields and defaults, config.json in and out
    inputs.py          what callers pass, checked before the forward pass sees it
    transformer.py     the forward pass: embeddings -> n x block(attention, FFN), pure functions
    runner.py          the encoder on one backend: prepared weights, hooks, host conversion
    classes.py         the six classes (encoder + head + loss) with transformers' names and outputs
    losses.py          the reference's losses; outputs.py: ModelOutput and its subclasses
    initialization.py  seeded random weights with the checkpoint's names
"""
