"""Checks of the tokenizer's call arguments, and padding/truncation resolved as the reference does.

Wrong types are TypeErrors and wrong values TokenizerErrors, each naming the argument (and the
batch item); where the reference would panic or silently skip a step, the error says what to change.

    >>> resolve_strategies(padding=True, truncation=None, max_length=8, pad_to_multiple_of=None,
    ...                    model_max_length=512)
    ('longest', 'do_not_truncate', 8)
    >>> check_item(("a question", "a context"), 0, is_split_into_words=False)
    ('a question', 'a context')
"""

from __future__ import annotations

import numpy as np

from ..errors import TokenizerError

LARGE_INTEGER = int(1e20)  # a model_max_length above this means "no known maximum", as in the reference
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")
_PADDING = ("longest", "max_length", "do_not_pad")


def resolve_strategies(padding, truncation, max_length, pad_to_multiple_of, model_max_length):
    """(padding strategy, truncation strategy, max_length) from the call's arguments, as the reference."""
    if max_length is not None:
        max_length = check_count(max_length, "max_length")
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"  # max_length alone turns truncation on, as in the reference
    padding_strategy = _strategy(_enum_value(padding), "padding", _PADDING)
    truncation_strategy = _strategy(_enum_value(truncation), "truncation", _TRUNCATION)
    if max_length is None:
        if padding_strategy == "max_length":
            if model_max_length > LARGE_INTEGER:
                padding_strategy = "do_not_pad"  # no known maximum: the reference does not pad
            else:
                max_length = model_max_length
        if truncation_strategy != "do_not_truncate":
            if model_max_length > LARGE_INTEGER:
                truncation_strategy = "do_not_truncate"  # likewise, no truncation
            else:
                max_length = model_max_length
    if (
        truncation_strategy != "do_not_truncate"
        and padding_strategy != "do_not_pad"
        and pad_to_multiple_of is not None
        and max_length is not None
        and max_length % pad_to_multiple_of != 0
    ):
        raise TokenizerError(
            f"truncation and padding are both on but the truncation length ({max_length}) is not a "
            f"multiple of pad_to_multiple_of ({pad_to_multiple_of})"
        )
    return padding_strategy, truncation_strategy, max_length


def _strategy(value, kind, names):
    """The strategy `value` names: True is the first of `names`, False or None the last ("do not")."""
    if value is True:
        return names[0]
    if value is False or value is None:
        return names[-1]
    if isinstance(value, str) and value in names:
        return value
    choices = ", ".join(map(repr, names[:-1])) + f" or {names[-1]!r}"
    raise TokenizerError(f"unknown {kind} strategy {value!r}: use True, False, {choices}")


def _enum_value(value):
    """The string of a transformers PaddingStrategy/TruncationStrategy enum, else the value itself."""
    return getattr(value, "value", value)


def check_truncation_room(max_length, stride, n_single, n_needed, any_pair):
    """What the reference checks when truncation is set up: `stride` may not exceed max_length minus a
    single sequence's `n_single` special tokens, and max_length must hold the `n_needed` special tokens."""
    room = max_length - n_single
    if 0 <= room < stride:
        raise TokenizerError(
            f"stride={stride} is larger than max_length={max_length} minus the "
            f"{n_single} special tokens ({room}); lower the stride"
        )
    if max_length < n_needed:
        # The reference's Rust library silently skips truncation here (unsigned underflow).
        raise TokenizerError(
            f"max_length={max_length} leaves no room for the {n_needed} special tokens of "
            f"{'a pair' if any_pair else 'a single sequence'}; use max_length >= {n_needed}"
        )


def check_unknown_kwargs(kwargs):
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(kwargs))}")


def check_count(value, name):
    """An int >= 0 (a NumPy integer counts), as an int."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < 0:
        raise TokenizerError(f"{name} must be >= 0, got {value}")
    return value


def is_int(value):
    """An int or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def to_id_list(ids):
    """A list of int token ids from a list, tuple or array of ints."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)):
        raise TypeError(f"token ids must be an int or a list of ints, got {type(ids).__name__}")
    out = []
    for k, i in enumerate(ids):
        if not is_int(i):
            raise TypeError(f"token id at position {k} is {type(i).__name__}, not int")
        out.append(int(i))
    return out


def check_str_list(items, name):
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, got {type(items).__name__}")
    for k, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{k}] is {type(t).__name__}, not str")
    return items


def _check_text(x, where, is_split_into_words):
    if is_split_into_words:
        if isinstance(x, str) or not isinstance(x, (list, tuple)):
            raise TypeError(f"{where} must be a list of words (str) with is_split_into_words=True, got {type(x).__name__}")
        for k, w in enumerate(x):
            if not isinstance(w, str):
                raise TypeError(f"{where}[{k}] is {type(w).__name__}, not str")
        return list(x)
    if not isinstance(x, str):
        raise TypeError(f"{where} must be a str, got {type(x).__name__}")
    return x


def check_item(x, i, is_split_into_words):
    """(first, second or None) of batch item i, checked."""
    if isinstance(x, tuple) or (isinstance(x, list) and not is_split_into_words):
        if len(x) != 2:
            raise TypeError(
                f"batch item {i} must be a str or a pair (text, text_pair), got a {type(x).__name__} of length {len(x)}"
            )
        a = _check_text(x[0], f"batch item {i} (first text)", is_split_into_words)
        b = _check_text(x[1], f"batch item {i} (second text)", is_split_into_words)
        return a, b
    return _check_text(x, f"batch item {i}", is_split_into_words), None
