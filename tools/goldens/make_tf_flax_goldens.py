"""Write the goldens of the TF and Flax checkpoint tests with transformers' own TF and Flax classes.

Dev environment only (transformers 4.57.6 with tensorflow-cpu + tf-keras, jax + flax; no torch):

    TF_USE_LEGACY_KERAS=1 python tools/goldens/make_tf_flax_goldens.py [--out tests/golden/formats/tf_flax]
    (here: TF_USE_LEGACY_KERAS=1 /work/main/.venv-tf/bin/python tools/goldens/make_tf_flax_goldens.py; ~1 min)

What it writes (every checkpoint tiny: vocab 64, dim 16, 2 layers):
  tf/<case>/      config.json + tf_model.h5, saved by TFDistilBert*.save_pretrained
  flax/<case>/    config.json + flax_model.msgpack, saved by FlaxDistilBert*.save_pretrained
  inputs.npz      input_ids / attention_mask (3 x 7, two rows padded) and multiple-choice inputs (2 x 3 x 7)
  expected.npz    "<framework>/<case>/<field>": every output of a fresh model loaded back from the saved
                  files with from_pretrained (all hidden states and attentions included)
  manifest.json   the cases (class, config, outputs), command, versions, date, seed

Every case covers one of the six classes in each framework, with the configs rotated so that
sinusoidal position embeddings, relu, gelu and gelu_new all occur (plus an untied Flax MLM head).
Weights are set to seeded random values before saving: the classes' own initialisation has zero
biases and unit LayerNorms, which would leave those tensors untested.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # transformers' TF classes need Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from format_golden_files import add_outputs, finish, output_folder, padded_inputs  # noqa: E402

SEED = 2024
SMALL = dict(vocab_size=64, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=24)
CONFIGS = {
    "gelu": dict(SMALL, activation="gelu"),
    "relu_sinusoidal": dict(SMALL, activation="relu", sinusoidal_pos_embds=True),
    "gelu_new": dict(SMALL, activation="gelu_new", n_heads=4),
}
# case -> (class suffix, config name, extra config fields, frameworks)
CASES = {
    "model": ("Model", "relu_sinusoidal", {}, ("tf", "flax")),
    "model_gelu_new": ("Model", "gelu_new", {}, ("tf", "flax")),
    "mlm": ("ForMaskedLM", "gelu_new", {}, ("tf", "flax")),
    "mlm_untied": ("ForMaskedLM", "gelu", dict(tie_word_embeddings=False), ("flax",)),
    "seq_cls": ("ForSequenceClassification", "gelu", dict(num_labels=3), ("tf", "flax")),
    "mc": ("ForMultipleChoice", "relu_sinusoidal", {}, ("tf", "flax")),
    "token_cls": ("ForTokenClassification", "gelu_new", dict(num_labels=5), ("tf", "flax")),
    "qa": ("ForQuestionAnswering", "gelu", {}, ("tf", "flax")),
}
FIELDS = ("last_hidden_state", "logits", "start_logits", "end_logits")


def random_value(name, shape, rng):
    """Seeded weights: LayerNorm scales near 1, everything else N(0, 0.2^2)."""
    noise = rng.standard_normal(shape).astype(np.float32)
    if ("norm" in name.lower()) and (name.endswith(("gamma:0", "scale"))):
        return 1.0 + 0.1 * noise
    return 0.2 * noise


def config_for(case):
    from transformers import DistilBertConfig

    _, config_name, extra, _ = CASES[case]
    return DistilBertConfig(**CONFIGS[config_name], **extra)


def inputs_for(case, inputs):
    if CASES[case][0] == "ForMultipleChoice":
        return inputs["mc_input_ids"], inputs["mc_attention_mask"]
    return inputs["input_ids"], inputs["attention_mask"]


def arrays_of(out):
    """Every output field as float32 NumPy: the heads' fields, hidden states and attentions."""
    arrays = {k: np.asarray(out[k], dtype=np.float32) for k in FIELDS if k in out}
    for key in ("hidden_states", "attentions"):
        for i, value in enumerate(out[key]):
            arrays[f"{key}.{i}"] = np.asarray(value, dtype=np.float32)
    return arrays


def make_tf(case, directory, inputs, seed):
    import tensorflow as tf
    import transformers

    cls = getattr(transformers, f"TFDistilBert{CASES[case][0]}")
    model = cls(config_for(case))
    model(model.dummy_inputs)  # builds the weights
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(random_value(weight.name, weight.shape, rng))
    model.save_pretrained(directory)
    fresh = cls.from_pretrained(directory)
    ids, mask = inputs_for(case, inputs)
    out = fresh(input_ids=tf.constant(ids), attention_mask=tf.constant(mask), output_hidden_states=True,
                output_attentions=True, training=False)
    return arrays_of(out), cls.__name__


def make_flax(case, directory, inputs, seed):
    import jax
    import transformers

    cls = getattr(transformers, f"FlaxDistilBert{CASES[case][0]}")
    model = cls(config_for(case), seed=seed)
    rng = np.random.default_rng(seed)
    model.params = jax.tree_util.tree_map_with_path(
        lambda path, leaf: random_value("/".join(str(k.key) for k in path), leaf.shape, rng), model.params
    )
    model.save_pretrained(directory)
    fresh = cls.from_pretrained(directory)
    ids, mask = inputs_for(case, inputs)
    out = fresh(ids, mask, output_hidden_states=True, output_attentions=True, train=False)
    return arrays_of(out), cls.__name__


def main():
    out = output_folder(__doc__, "tf_flax")
    inputs = padded_inputs(np.random.default_rng(SEED), SMALL["vocab_size"], [7, 5, 3], [[7, 4, 7], [7, 7, 6]], np.int32)
    expected, cases = {}, {}
    makers = {"tf": make_tf, "flax": make_flax}
    for number, (case, (suffix, config_name, extra, frameworks)) in enumerate(CASES.items()):
        for framework in frameworks:
            arrays, class_name = makers[framework](case, out / framework / case, inputs, SEED + number)
            cases[f"{framework}/{case}"] = dict(
                framework=framework, directory=f"{framework}/{case}", reference_class=class_name,
                plain_class=f"DistilBert{suffix}", config=config_name, extra_config=extra,
                inputs="mc" if suffix == "ForMultipleChoice" else "ids",
                outputs=add_outputs(expected, f"{framework}/{case}", arrays),
            )

    import flax
    import h5py
    import jax
    import msgpack
    import tensorflow as tf
    import tf_keras
    import transformers

    finish(out, inputs, expected, dict(
        description="TF and Flax checkpoints saved by transformers' TF / Flax DistilBERT classes, and their outputs "
        "on inputs.npz from fresh models loaded back with from_pretrained.",
        command="TF_USE_LEGACY_KERAS=1 python tools/goldens/make_tf_flax_goldens.py",
        versions=dict(
            transformers=transformers.__version__, tensorflow=tf.__version__, tf_keras=tf_keras.__version__,
            jax=jax.__version__, flax=flax.__version__, h5py=h5py.__version__, msgpack=".".join(map(str, msgpack.version)),
        ),
        seed=SEED,
        configs=CONFIGS,
        cases=cases,
    ))


if __name__ == "__main__":
    main()
