"""The reference's losses, in NumPy, mean-reduced, returned as float32 0-d arrays.

Computed in float64 from float32 logits (the reference works in float32; the
difference is far below the 1e-4 tolerance). Like the reference, a
cross-entropy whose every label is ignored is NaN (0 / 0).
"""

import numpy as np

from .inputs import int_labels, label_array

IGNORE_INDEX = -100


def _result(value):
    return np.asarray(value, dtype=np.float32)


def log_softmax(logits, axis=-1):
    """log softmax in float64, stable: subtract the max first."""
    x = np.asarray(logits, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def cross_entropy(logits, labels, ignore_index=IGNORE_INDEX):
    """Mean cross-entropy of logits (N, C) against integer labels (N,), skipping ignore_index."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, classes), got {logits.shape}")
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"class labels must be integers, got dtype {labels.dtype}")
    labels = labels.reshape(-1)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {logits.shape[0]} rows of logits")
    keep = labels != ignore_index
    n_classes = logits.shape[1]
    bad = keep & ((labels < 0) | (labels >= n_classes))
    if bad.any():
        raise ValueError(
            f"label {int(labels[bad][0])} is outside [0, {n_classes}) and is not the ignore index {ignore_index}"
        )
    if not keep.any():
        return _result(np.nan)
    logp = log_softmax(logits[keep])  # (n, C)
    picked = logp[np.arange(logp.shape[0]), labels[keep]]  # (n,)
    return _result(-picked.mean())


def mse(predictions, targets):
    """Mean squared error; shapes must agree."""
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if predictions.shape != targets.shape:
        raise ValueError(f"regression labels have shape {targets.shape}, predictions have shape {predictions.shape}")
    return _result(((predictions - targets) ** 2).mean())


def bce_with_logits(logits, targets):
    """Mean binary cross-entropy on logits: max(x, 0) - x·t + log(1 + exp(-|x|))."""
    x = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if x.shape != t.shape:
        raise ValueError(f"multi-label targets have shape {t.shape}, logits have shape {x.shape}")
    loss = np.maximum(x, 0.0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return _result(loss.mean())


def span_loss(start_logits, end_logits, start_positions, end_positions):
    """Question answering: (CE(start) + CE(end)) / 2 with positions clamped to [0, S].

    The clamped value S (a position outside the input) is the ignore index, as in the
    reference; note that negative positions clamp to 0 and so count as position 0.
    """
    seq_len = start_logits.shape[1]
    parts = []
    for name, logits, positions in (
        ("start_positions", start_logits, start_positions),
        ("end_positions", end_logits, end_positions),
    ):
        positions = np.asarray(positions)
        if positions.dtype == np.bool_ or not np.issubdtype(positions.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {positions.dtype}")
        if positions.ndim > 1:
            positions = positions.reshape(positions.shape[0], -1)
            if positions.shape[1] != 1:
                raise ValueError(f"{name} must have shape (batch,) or (batch, 1), got {np.shape(positions)}")
            positions = positions[:, 0]
        positions = positions.reshape(-1)
        if positions.shape[0] != logits.shape[0]:
            raise ValueError(f"{name} has {positions.shape[0]} entries for a batch of {logits.shape[0]}")
        positions = np.clip(positions.astype(np.int64), 0, seq_len)
        parts.append(cross_entropy(logits, positions, ignore_index=seq_len))
    return _result((np.float64(parts[0]) + np.float64(parts[1])) / 2.0)


# ---------------------------------------------------------------- the heads' losses, as the reference computes them
# Used by the six classes (classes.py) and the adapters' flex heads alike.


def token_loss(logits, labels, attention_mask=None):
    """Cross-entropy at every position of logits (B, S, N); the MLM and token classification.

    attention_mask (B, S): padded positions ignored too (the adapters' tagging head does this;
    the transformers classes pass None and rely on -100 labels).
    """
    labels = int_labels(labels, logits.shape[:2], "labels")  # (B, S)
    if attention_mask is not None:
        labels = np.where(np.asarray(attention_mask) != 0, labels, IGNORE_INDEX)  # (B, S)
    return cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def problem_type(config_problem_type, num_labels, labels):
    """The reference's choice of sequence-classification loss when config.problem_type is None."""
    if config_problem_type is not None:
        return config_problem_type
    labels = label_array(labels)
    if num_labels == 1:
        return "regression"
    if labels.dtype != np.bool_ and np.issubdtype(labels.dtype, np.integer):
        return "single_label_classification"
    return "multi_label_classification"


def sequence_loss(logits, labels, kind):
    """Sequence classification on logits (B, N): kind "regression" (MSE), "single_label_classification"
    (cross-entropy, -100 ignored) or "multi_label_classification" (BCE with logits)."""
    n = logits.shape[-1]
    labels = label_array(labels)
    if kind == "single_label_classification":
        labels = int_labels(labels, (logits.shape[0],), "labels")
        return cross_entropy(logits.reshape(-1, n), labels.reshape(-1))
    if not (labels.dtype == np.bool_ or np.issubdtype(labels.dtype, np.number)):
        raise ValueError(f"{kind.replace('_', ' ')} targets must be numbers, got dtype {labels.dtype}")
    if kind == "regression":
        if n == 1:
            return mse(np.squeeze(logits), np.squeeze(labels).astype(np.float32))
        return mse(logits, labels.astype(np.float32))
    if labels.shape != logits.shape:
        raise ValueError(f"multi-label targets must have shape {logits.shape}, got {labels.shape}")
    return bce_with_logits(logits, labels.astype(np.float32))


def choice_loss(logits, labels):
    """Multiple choice: cross-entropy over the choices of logits (B, C)."""
    return cross_entropy(logits, int_labels(labels, (logits.shape[0],), "labels"))
