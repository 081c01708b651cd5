"""Property-test any DistilBERT deployment against minidistil.

    from hypothesis import given
    from minidistil.testing import checks, strategies

    @given(strategies.token_batches(config))
    def test_my_export(batch):
        checks.assert_matches_reference(my_fn, *batch, reference_model)
        checks.assert_padding_invariant(my_fn, *batch)

`checks` (plain NumPy assertions, no hypothesis needed): assert_padding_invariant,
assert_batch_invariant, assert_deterministic, assert_matches_reference,
assert_same_encoding, model_callable, InvariantViolation.
`strategies` (needs hypothesis: pip install "minidistil[testing]"): texts, configs,
checkpoints, token_batches, encodings.

Every name of both modules is also available from this package; the strategies
are imported on first use, so the checks work without hypothesis installed.
"""

from importlib import import_module

from .checks import (
    InvariantViolation,
    assert_batch_invariant,
    assert_deterministic,
    assert_matches_reference,
    assert_padding_invariant,
    assert_same_encoding,
    model_callable,
)

_STRATEGY_NAMES = (
    "texts", "configs", "checkpoints", "token_batches", "encodings", "TokenBatch", "EncodingCase", "write_checkpoint",
)

__all__ = [
    "InvariantViolation",
    "assert_batch_invariant",
    "assert_deterministic",
    "assert_matches_reference",
    "assert_padding_invariant",
    "assert_same_encoding",
    "model_callable",
    "checks",
    "strategies",
    *_STRATEGY_NAMES,
]


def __getattr__(name):
    if name == "strategies" or name in _STRATEGY_NAMES:
        try:
            module = import_module(".strategies", __name__)
        except ImportError as error:
            raise ImportError(
                f"minidistil.testing.{name} needs hypothesis: pip install 'minidistil[testing]' ({error})"
            ) from error
        value = module if name == "strategies" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'minidistil.testing' has no attribute {name!r}")


def __dir__():
    return __all__
