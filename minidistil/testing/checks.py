"""Invariant checks for any DistilBERT deployment, written as plain assertions.

Each check takes a callable `f(input_ids, attention_mask) -> array` (an ONNX
Runtime session wrapped in a function, a model server client, a quantised
build, a minidistil model...) and one batch of inputs, and raises
`InvariantViolation` (an AssertionError) when a property every correct encoder
has does not hold:

    assert_padding_invariant(f, ids, mask)   real positions ignore what padding holds and how much there is
    assert_batch_invariant(f, ids, mask)     each row's output depends on that row only
    assert_deterministic(f, ids, mask)       the same input gives the same output, and f leaves its inputs alone
    assert_matches_reference(f, ids, mask, reference)   agrees with a minidistil model within a tolerance
    assert_same_encoding(tokenizer, reference, case)    two tokenizers give the same encoding

The message names the property, shows the input and the largest difference
(where, expected, got, tolerance), so that inside a hypothesis test the
report of the shrunk example is enough to start debugging:

    @given(strategies.token_batches(config))
    def test_export(batch):
        assert_matches_reference(onnx_fn, *batch, reference_model)

Outputs may be per token, shape (batch, seq_len, ...), or per sequence, shape
(batch, ...): the checks tell them apart by shape (pass per_token= to say so).
By default only real positions (attention_mask 1) of per-token outputs are
compared, and only rows with at least one real token of per-sequence outputs;
positions="all" compares padded positions and fully padded rows too.

This module needs only NumPy; the hypothesis strategies are in `strategies`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

__all__ = [
    "InvariantViolation",
    "assert_padding_invariant",
    "assert_batch_invariant",
    "assert_deterministic",
    "assert_matches_reference",
    "assert_same_encoding",
    "model_callable",
]

PADDING = "padding invariance"
BATCH = "batch invariance"
DETERMINISM = "determinism"
REFERENCE = "agreement with the reference"
ENCODING = "tokenizer agreement"

_OUTPUT_FIELDS = ("last_hidden_state", "logits", "start_logits")
_MAX_INPUT_CHARS = 2000


class InvariantViolation(AssertionError):
    """A property that every correct encoder has does not hold for one input.

    Attributes: `property` (e.g. "padding invariance"), `detail` (what differed),
    `inputs` ({name: value} shown in the message), `max_diff` (largest absolute
    difference, None when not numeric), `index` (where it is), `expected`, `actual`
    (the two values there).
    """

    def __init__(self, property, detail, *, inputs=None, max_diff=None, index=None, expected=None,
                 actual=None, lines=()):
        self.property = property
        self.detail = detail
        self.inputs = dict(inputs or {})
        self.max_diff = max_diff
        self.index = index
        self.expected = expected
        self.actual = actual
        self._lines = tuple(lines)
        parts = [f"{property} violated: {detail}"]
        parts.extend(f"  {line}" for line in lines)
        for name, value in self.inputs.items():
            parts.append(f"  {name} = {_fmt_value(value, indent=len(name) + 5)}")
        super().__init__("\n".join(parts))

    def __reduce__(self):  # picklable (e.g. across pytest-xdist workers) despite the keyword-only fields
        fields = dict(inputs=self.inputs, max_diff=self.max_diff, index=self.index, expected=self.expected,
                      actual=self.actual, lines=self._lines)
        return (_rebuild_violation, (type(self), self.property, self.detail, fields))


def _rebuild_violation(cls, property, detail, fields):
    return cls(property, detail, **fields)


# --------------------------------------------------------------------------- formatting


def _fmt_value(value, indent=0):
    if isinstance(value, np.ndarray):
        text = np.array2string(value, separator=", ", threshold=400, max_line_width=110)
        text = text.replace("\n", "\n" + " " * indent)
    elif isinstance(value, str):
        text = _fmt_text(value)
    else:
        text = repr(value)
    if len(text) > _MAX_INPUT_CHARS:
        text = text[:_MAX_INPUT_CHARS] + f"... ({len(text)} characters in all)"
    return text


def _fmt_text(text):
    """repr of a text, plus its escaped form when it has non-ASCII characters (to see combining marks, ZWJ...)."""
    shown = repr(text)
    if not text.isascii():
        shown += f"  (escaped: {ascii(text)})"
    return shown


def _fmt_number(x):
    return f"{x:.6g}" if np.isfinite(x) else str(x)


def _fmt_index(index, per_token):
    index = tuple(int(i) for i in index)
    if not index:
        return "[]"
    if per_token and len(index) >= 2:
        parts = [f"row {index[0]}", f"position {index[1]}"]
        if len(index) > 2:
            parts.append(f"feature {index[2] if len(index) == 3 else index[2:]}")
    else:
        parts = [f"row {index[0]}"]
        if len(index) > 1:
            parts.append(f"index {index[1] if len(index) == 2 else index[1:]}")
    return "[" + ", ".join(parts) + "]"


# --------------------------------------------------------------------------- calling f


def _to_numpy(value):
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu().numpy()
    elif hasattr(value, "get") and hasattr(value, "device") and not isinstance(value, Mapping):  # cupy
        value = value.get()
    return np.asarray(value)


def _as_array(out, output=None):
    """The array to compare from whatever f returned: an array, a ModelOutput/dict, or a list of arrays."""
    if callable(output):
        out = output(out)
    elif output is not None:
        out = out[output] if isinstance(out, Mapping) else getattr(out, output)
    elif isinstance(out, Mapping) or any(hasattr(type(out), name) for name in _OUTPUT_FIELDS):
        for name in _OUTPUT_FIELDS:
            value = out.get(name) if isinstance(out, Mapping) else getattr(out, name, None)
            if value is not None:
                out = value
                break
        else:
            raise TypeError(f"cannot tell which output to compare in {type(out).__name__}: pass output=")
    elif isinstance(out, (list, tuple)) and out and hasattr(out[0], "shape"):
        out = out[0]  # e.g. onnxruntime's session.run returns a list of outputs
    array = _to_numpy(out)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"f returned {type(out).__name__} of dtype {array.dtype}, expected a numeric array")
    return array


def _call(f, input_ids, attention_mask, output=None, what=None):
    try:
        out = f(input_ids, attention_mask)
    except Exception as error:
        if what and hasattr(error, "add_note"):
            error.add_note(f"minidistil.testing: raised while {what} (input shape {input_ids.shape})")
        raise
    return _as_array(out, output)


def _validate(input_ids, attention_mask):
    ids = np.asarray(input_ids)
    mask = np.asarray(attention_mask)
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"input_ids must have shape (batch, seq_len) with both > 0, got {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"input_ids must be integers, got dtype {ids.dtype}")
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask has shape {mask.shape}, input_ids {ids.shape}")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    return ids, mask


def _per_token_hint(f, per_token):
    """per_token as given, else what f says of itself (model_callable sets f.per_token), else None."""
    if per_token is not None:
        return bool(per_token)
    hint = getattr(f, "per_token", None)
    return None if hint is None else bool(hint)


def _is_per_token(out, ids, per_token, f=None):
    per_token = _per_token_hint(f, per_token)
    if per_token is not None:
        return per_token
    return out.ndim >= 2 and out.shape[:2] == ids.shape


def _selection(mask, per_token, positions):
    """Boolean array of what to compare: (B, S) real positions, (B,) rows with a real token, or None (all)."""
    if positions not in ("real", "all"):
        raise ValueError(f"positions must be 'real' or 'all', got {positions!r}")
    if positions == "all":
        return None
    real = mask.astype(bool)
    return real if per_token else real.any(axis=1)


def _padding_side(mask):
    real = mask.astype(bool)
    if real.all():
        return "none"
    lengths = real.sum(axis=1)
    s = mask.shape[1]
    right = all(real[i, : lengths[i]].all() for i in range(len(real)))
    left = all(real[i, s - lengths[i]:].all() for i in range(len(real)))
    return "right" if right else "left" if left else "mixed"


def _inputs(ids, mask, **more):
    inputs = {"input_ids": ids, "attention_mask": mask}
    inputs.update(more)
    return inputs


def _compare(prop, detail, expected, actual, *, atol, rtol, select, per_token, inputs, labels=("expected", "got"),
             lines=()):
    """Raise InvariantViolation when actual and expected differ beyond atol + rtol·|expected| where select is set."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    if expected.shape != actual.shape:
        raise InvariantViolation(
            prop, f"{detail}: output shape {actual.shape} differs from {expected.shape}", inputs=inputs, lines=lines
        )
    e = expected.astype(np.float64)
    a = actual.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
    allowed = atol + rtol * np.abs(np.nan_to_num(e, nan=0.0, posinf=0.0, neginf=0.0))
    bad = diff > allowed
    if select is not None:
        sel = np.asarray(select, dtype=bool)
        sel = sel.reshape(sel.shape + (1,) * (diff.ndim - sel.ndim))
        sel = np.broadcast_to(sel, diff.shape)
        bad &= sel
        compared = int(sel.sum())
    else:
        compared = diff.size
    if not bad.any():
        return
    flat = np.argmax(np.where(bad, diff, -1.0))
    index = np.unravel_index(flat, diff.shape)
    max_diff = float(diff[index])
    exp_value = float(e[index])
    act_value = float(a[index])
    tolerance = f"atol={atol:g}" + (f", rtol={rtol:g}" if rtol else "")
    summary = [
        f"largest difference {_fmt_number(max_diff)} at {_fmt_index(index, per_token)}: "
        f"{labels[0]} {_fmt_number(exp_value)}, {labels[1]} {_fmt_number(act_value)} ({tolerance})",
        f"{int(bad.sum())} of {compared} compared values differ beyond the tolerance",
    ]
    raise InvariantViolation(
        prop, detail, inputs=inputs, max_diff=max_diff, index=tuple(int(i) for i in index), expected=exp_value,
        actual=act_value, lines=summary + list(lines),
    )


def _config_of(f):
    config = getattr(f, "config", None)
    if config is None:
        config = getattr(getattr(f, "model", None), "config", None)
    return config


# --------------------------------------------------------------------------- checks


def assert_padding_invariant(f, input_ids, attention_mask, *, atol=1e-5, rtol=1e-5, extra=3, pad_token_id=None,
                             vocab_size=None, max_length=None, per_token=None, cls_pooled=True, output=None, seed=0):
    """Outputs at real positions do not depend on the padding.

    Two variations of the batch must leave the outputs unchanged:
      1. every padded position gets a different token id (what padding holds);
      2. `extra` more padding columns are appended on the right (how much padding
         there is; real positions keep their position ids).
    Per-token outputs are compared at real positions. Per-sequence outputs are
    compared on rows with a real token; with cls_pooled=True (DistilBERT's heads read
    position 0, the [CLS] token) only on rows whose first position is real, since left
    padding legitimately puts a padded position there.
    vocab_size bounds the replacement ids (default: f.config.vocab_size, else the
    largest id + 1); max_length bounds the grown length (default:
    f.config.max_position_embeddings, else no bound).
    """
    ids, mask = _validate(input_ids, attention_mask)
    config = _config_of(f)
    if vocab_size is None:
        vocab_size = getattr(config, "vocab_size", None) or max(int(ids.max()) + 1, 2)
    if pad_token_id is None:
        pad_token_id = getattr(config, "pad_token_id", None) or 0
    if max_length is None:
        max_length = getattr(config, "max_position_embeddings", None)
    side = _padding_side(mask)
    seq_len = ids.shape[1]
    base = _call(f, ids, mask, output, "checking padding invariance")

    grow = extra if max_length is None else min(extra, max_length - seq_len)
    grown_out = None
    if grow > 0:
        grown_ids = np.concatenate([ids, np.full((ids.shape[0], grow), pad_token_id, dtype=ids.dtype)], axis=1)
        grown_mask = np.concatenate([mask, np.zeros((mask.shape[0], grow), dtype=mask.dtype)], axis=1)
        grown_out = _call(f, grown_ids, grown_mask, output,
                          f"checking padding invariance ({grow} padding columns appended; max_length= bounds this)")
    per_token = _per_token_hint(f, per_token)
    if per_token is None:
        if grown_out is not None:  # a per-token output grows with the input
            per_token = _is_per_token(base, ids, None) and grown_out.shape[:2] == grown_ids.shape
        else:
            per_token = _is_per_token(base, ids, None)
    if per_token:
        select = mask.astype(bool)
    else:
        select = mask[:, 0].astype(bool) if cls_pooled else mask.astype(bool).any(axis=1)
    lines = [f"padding side: {side}"]

    padded = mask == 0
    if padded.any() and vocab_size >= 2:
        rng = np.random.default_rng(seed)
        scrambled = ids.copy()
        shift = rng.integers(1, vocab_size, size=int(padded.sum()))
        scrambled[padded] = (ids[padded] % vocab_size + shift) % vocab_size  # a different id at every padded position
        out = _call(f, scrambled, mask, output, "checking padding invariance (other ids at padded positions)")
        _compare(
            PADDING, "outputs changed when the token ids at padded positions changed",
            base, out, atol=atol, rtol=rtol, select=select, per_token=per_token,
            inputs=_inputs(ids, mask, **{"input_ids with other padding ids": scrambled}), lines=lines,
        )

    if grown_out is not None:
        if per_token:
            if grown_out.ndim < 2 or grown_out.shape[1] != seq_len + grow:
                raise InvariantViolation(
                    PADDING,
                    f"per-token output of shape {base.shape} became {grown_out.shape} when {grow} padding columns "
                    "were appended (pass per_token=False if the output is per sequence)",
                    inputs=_inputs(ids, mask),
                )
            grown_out = grown_out[:, :seq_len]
        _compare(
            PADDING, f"outputs changed when {grow} padding column(s) were appended",
            base, grown_out, atol=atol, rtol=rtol, select=select, per_token=per_token,
            inputs=_inputs(ids, mask), lines=lines,
        )


def assert_batch_invariant(f, input_ids, attention_mask, *, atol=1e-5, rtol=1e-5, positions="real", per_token=None,
                           output=None, seed=0):
    """Each row's output depends on that row only.

    The batch's output must equal (within atol + rtol·|x|) each row run alone, and
    the output of the batch with its rows permuted, permuted back.
    """
    ids, mask = _validate(input_ids, attention_mask)
    base = _call(f, ids, mask, output, "checking batch invariance")
    per_token = _is_per_token(base, ids, per_token, f)
    select = _selection(mask, per_token, positions)
    n = ids.shape[0]
    if n < 2:
        return
    for i in range(n):
        alone = _call(f, ids[i:i + 1], mask[i:i + 1], output, f"checking batch invariance (row {i} alone)")
        if alone.shape[1:] != base.shape[1:]:
            raise InvariantViolation(
                BATCH, f"row {i} run alone gives output shape {alone.shape}, in the batch {base[i:i + 1].shape}",
                inputs=_inputs(ids, mask),
            )
        _compare(
            BATCH, f"row {i} of the batch differs from row {i} run alone (rows are not independent)",
            alone, base[i:i + 1], atol=atol, rtol=rtol,
            select=None if select is None else select[i:i + 1], per_token=per_token,
            inputs=_inputs(ids, mask), labels=("alone", "in the batch"),
            lines=["(the index's row is the position in the batch)"],
        )
    perm = np.roll(np.arange(n), 1) if n == 2 else np.random.default_rng(seed).permutation(n)
    if (perm == np.arange(n)).all():
        perm = np.roll(perm, 1)
    out = _call(f, ids[perm], mask[perm], output, "checking batch invariance (rows permuted)")
    _compare(
        BATCH, f"permuting the rows of the batch (order {perm.tolist()}) changed their outputs",
        base[perm], out, atol=atol, rtol=rtol, select=None if select is None else select[perm], per_token=per_token,
        inputs=_inputs(ids, mask), labels=("in order", "permuted"),
        lines=["(the index's row is the position in the permuted batch)"],
    )


def assert_deterministic(f, input_ids, attention_mask, *, repeats=3, atol=0.0, rtol=0.0, positions="all",
                         per_token=None, output=None):
    """Calling f again on the same input gives the same output (exactly, by default), and f leaves its inputs alone."""
    ids, mask = _validate(input_ids, attention_mask)
    ids_before, mask_before = ids.copy(), mask.copy()
    first = _call(f, ids, mask, output, "checking determinism")
    for name, now, before in (("input_ids", ids, ids_before), ("attention_mask", mask, mask_before)):
        if not np.array_equal(now, before):
            raise InvariantViolation(
                DETERMINISM, f"f modified its {name} argument in place",
                inputs=_inputs(ids_before, mask_before, **{f"{name} after the call": now.copy()}),
            )
    per_token = _is_per_token(first, ids, per_token, f)
    select = _selection(mask, per_token, positions)
    for r in range(1, repeats):
        again = _call(f, ids_before.copy(), mask_before.copy(), output, f"checking determinism (call {r + 1})")
        _compare(
            DETERMINISM, f"call {r + 1} on the same input gave a different output from call 1",
            first, again, atol=atol, rtol=rtol, select=select, per_token=per_token,
            inputs=_inputs(ids_before, mask_before), labels=("call 1", f"call {r + 1}"),
        )


_MODEL_CACHE = {}


def _load_reference(path, backend="numpy"):
    import minidistil
    from minidistil.checkpoints.loading import read_config_dict

    path = os.fspath(path)
    key = (os.path.realpath(path), backend)
    if key not in _MODEL_CACHE:
        architectures = read_config_dict(path).get("architectures") or ["DistilBertModel"]
        cls = getattr(minidistil, architectures[0], None) or minidistil.DistilBertModel
        _MODEL_CACHE[key] = cls.from_pretrained(path, backend=backend)
    return _MODEL_CACHE[key]


def model_callable(model, output=None, backend="numpy"):
    """f(input_ids, attention_mask) -> array from a minidistil model or a checkpoint directory.

    output: the field of the model's output to return (default last_hidden_state, else
    logits, else start_logits), or a function of the output. A multiple-choice model
    sees each row as a question with one choice (logits of shape (batch, 1)). A directory is loaded with
    the class its config.json names, on the NumPy reference backend by default.
    The callable keeps the model as `.model` and its config as `.config`.
    """
    if isinstance(model, (str, os.PathLike)):
        model = _load_reference(model, backend)

    multiple_choice = getattr(model, "head", None) == "multiple_choice"

    def f(input_ids, attention_mask):
        if multiple_choice:  # each row is one question with a single choice: (B, S) -> (B, 1, S) -> logits (B, 1)
            input_ids, attention_mask = np.asarray(input_ids)[:, None], np.asarray(attention_mask)[:, None]
        return _as_array(model(input_ids=input_ids, attention_mask=attention_mask), output)

    f.model = model
    f.config = getattr(model, "config", None)
    f.per_token = getattr(model, "head", None) not in ("sequence_classification", "multiple_choice")
    f.__name__ = f"minidistil {type(model).__name__}"
    return f


def assert_matches_reference(f, input_ids, attention_mask, reference, *, atol=1e-4, rtol=0.0, positions="real",
                             per_token=None, output=None, reference_output=None):
    """f agrees with a minidistil model within atol + rtol·|reference|.

    atol is an absolute bound on |f - reference|, the form in which minidistil states its own
    agreement with the reference (1e-4); rtol, 0 unless given, loosens it where values are large.

    reference: a minidistil model, a checkpoint directory (loaded on the NumPy
    backend), or any callable f(input_ids, attention_mask). reference_output picks
    the model output to compare (default last_hidden_state, else logits); output
    does the same for what f returns when it is not an array.
    """
    ids, mask = _validate(input_ids, attention_mask)
    if isinstance(reference, (str, os.PathLike)) or (hasattr(reference, "config") and hasattr(reference, "forward")):
        ref_fn = model_callable(reference, reference_output)
    else:
        ref_fn = reference
    expected = _call(ref_fn, ids, mask, reference_output, "computing the reference output")
    actual = _call(f, ids, mask, output, "checking agreement with the reference")
    per_token = _is_per_token(expected, ids, per_token, ref_fn)
    _compare(
        REFERENCE, "outputs differ from the minidistil reference",
        expected, actual, atol=atol, rtol=rtol, select=_selection(mask, per_token, positions), per_token=per_token,
        inputs=_inputs(ids, mask), labels=("reference", "got"), lines=[f"padding side: {_padding_side(mask)}"],
    )


# --------------------------------------------------------------------------- tokenizers


def _plain(value):
    """Nested lists of Python scalars, whatever the container (arrays, tuples, tensors)."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        return _to_numpy(value).tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _first_difference(a, b, path=()):
    """Index path of the first place where nested lists a and b differ, or None."""
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, path + (i,))
            if found is not None:
                return found
        return None if len(a) == len(b) else path + (min(len(a), len(b)),)
    return None if a == b else path


def _at(value, path):
    for i in path:
        if not isinstance(value, list) or i >= len(value):
            return "(absent)"
        value = value[i]
    return value


def _tokens(tokenizer, ids):
    convert = getattr(tokenizer, "convert_ids_to_tokens", None)
    if convert is None or not isinstance(ids, list):
        return None
    try:
        if ids and isinstance(ids[0], list):
            return [convert(row) for row in ids]
        return convert(ids)
    except Exception:
        return None


def _encode(tokenizer, args, kwargs):
    try:
        return tokenizer(*args, **kwargs), None
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as error:  # a refused option combination (a Rust panic is a BaseException): compared below
        return None, error


def assert_same_encoding(tokenizer, reference, *args, fields=None, **kwargs):
    """Two tokenizers encode the same input identically.

    Call as assert_same_encoding(mine, reference, case) with an `EncodingCase` from
    strategies.encodings(), or with the tokenizer arguments themselves:
    assert_same_encoding(mine, reference, "some text", truncation=True, max_length=8).
    Both are called with the same arguments; every field of the reference's result
    (or `fields`) must be equal. When one raises and the other does not, that is a
    violation; when both raise, they agree (the option combination is refused).
    """
    if len(args) == 1 and hasattr(args[0], "tokenizer_args"):
        case = args[0]
        args, kwargs = case.tokenizer_args(), {**case.kwargs, **kwargs}
    shown = {}
    for name, value in zip(("text", "text_pair"), args):
        shown[name] = value
    for name, value in zip(range(2, len(args)), args[2:]):
        shown[f"argument {name}"] = value
    if kwargs:
        shown["options"] = kwargs

    theirs, their_error = _encode(reference, args, kwargs)
    mine, my_error = _encode(tokenizer, args, kwargs)
    if their_error is not None and my_error is not None:
        return
    if their_error is not None or my_error is not None:
        raiser, error = ("the reference", their_error) if their_error is not None else ("the tokenizer", my_error)
        raise InvariantViolation(
            ENCODING, f"{raiser} raised {type(error).__name__}: {error} (the other did not)", inputs=shown
        )
    names = list(fields) if fields is not None else list(theirs.keys())
    for name in names:
        if name not in theirs:
            raise InvariantViolation(ENCODING, f"the reference's encoding has no field {name!r}", inputs=shown)
        if name not in mine:
            raise InvariantViolation(
                ENCODING, f"the encoding has no field {name!r} (the reference's has)", inputs=shown
            )
        expected, actual = _plain(theirs[name]), _plain(mine[name])
        where = _first_difference(expected, actual)
        if where is None:
            continue
        lines = [
            f"first difference at index {list(where)}: reference {_at(expected, where)!r}, got {_at(actual, where)!r}",
            f"reference {name} = {_fmt_value(expected)}",
            f"got       {name} = {_fmt_value(actual)}",
        ]
        if name == "input_ids":
            ref_tokens, my_tokens = _tokens(reference, expected), _tokens(tokenizer, actual)
            if ref_tokens is not None:
                lines.append(f"reference tokens = {_fmt_value(ref_tokens)}")
            if my_tokens is not None:
                lines.append(f"got       tokens = {_fmt_value(my_tokens)}")
        raise InvariantViolation(
            ENCODING, f"{name} differ", inputs=shown, index=where, expected=_at(expected, where),
            actual=_at(actual, where), lines=lines,
        )
