"""Every Numba kernel equals the NumPy reference within float32 rounding, on hypothesis-generated cases.

linear() has two paths: weights packed by prepare() (gemm.py's register tiles;
the row counts drawn cover whole tiles, edge tiles and several row blocks) and
plain weights through BLAS with a fused epilogue; `packed` draws which. Each
kernel has a parallel and a serial (small inputs) variant: `pooled` draws which.

Shapes include sequence length 1 and odd dimensions; masks include fully
masked rows; magnitudes go from 1e-3 to 1e3. "Within float32 rounding" is an
error bound per element computed from the inputs (summation order of a dot
product of n terms can move it by ~n * eps * sum|terms|), not a fixed tolerance,
so the check is as tight at magnitude 1e-3 as at 1e3.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidistil.kernels.reference import ACTIVATIONS, NumpyOps

pytest.importorskip("numba")
from minidistil.kernels.cpu import NumbaOps  # noqa: E402

EPS = float(np.finfo(np.float32).eps)  # 2**-23
REF = NumpyOps()
FAST = NumbaOps()  # as shipped: kernels with little work run in the calling thread
POOLED = NumbaOps()
POOLED.serial_work = 0  # every kernel through the thread pool, however small
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2**32 - 1)
magnitudes = st.sampled_from([1e-3, 1.0, 30.0, 1e3])
small = st.integers(1, 9)  # includes 1 (a single token) and odd sizes


def _array(rng, shape, magnitude):
    return (rng.standard_normal(shape) * magnitude).astype(np.float32)


def _assert_within(ours, ref, bound, what):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    err = np.abs(ours - ref)
    bad = ~(err <= bound)
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} of {bad.size} elements off, worst error {err[bad].max():.3e} "
        f"where the bound is {np.broadcast_to(bound, err.shape)[bad][np.argmax(err[bad])]:.3e}"
    )


def _activation_bound(pre, ref):
    """Tolerance of an activation output: rounding of the result, plus the reference's own erf error
    (Numerical Recipes erfc, absolute error < 1.2e-7, then rounded to float32 twice) times |x| / 2."""
    return 4 * EPS * np.abs(ref) + 2e-7 * np.abs(pre) + 1e-37


@SETTINGS
@given(pooled=st.booleans(), packed=st.booleans(), seed=seeds, rows=st.one_of(small, st.integers(60, 140)),
       n_in=st.one_of(small, st.integers(60, 200)), n_out=st.integers(1, 40), lead=st.integers(0, 2),
       magnitude=magnitudes, bias=st.booleans(), activation=st.sampled_from([None, *ACTIVATIONS]))
def test_linear(pooled, packed, seed, rows, n_in, n_out, lead, magnitude, bias, activation):
    fast = POOLED if pooled else FAST
    rng = np.random.default_rng(seed)
    shape = (2,) * lead + (rows, n_in)
    x = _array(rng, shape, magnitude)
    w = _array(rng, (n_out, n_in), 1.0)
    b = _array(rng, (n_out,), magnitude) if bias else None
    weight = fast.prepare({"w": w}, matrices=["w"] if packed else ())["w"]
    ours = fast.linear(x, weight, b, activation)
    ref = REF.linear(x, w, b, activation)
    pre = REF.linear(x, w, b)
    # the product itself: summation order (BLAS blocking) differs between calls
    product_bound = 2 * (n_in + 2) * EPS * (np.abs(x) @ np.abs(w).T + (0 if b is None else np.abs(b)))
    slope = 1.2 if activation in ("gelu", "gelu_new", "silu", "swish") else 1.0  # max |act'(x)| is about 1.13
    _assert_within(ours, ref, slope * product_bound + _activation_bound(pre, ref), f"linear {activation}")


@SETTINGS
@given(pooled=st.booleans(), seed=seeds, rows=small, cols=st.integers(1, 3000), magnitude=st.sampled_from([1e-3, 1.0, 5.0, 30.0, 1e3]),
       name=st.sampled_from(sorted(ACTIVATIONS)))
def test_activation(pooled, seed, rows, cols, magnitude, name):
    fast = POOLED if pooled else FAST
    rng = np.random.default_rng(seed)
    x = _array(rng, (rows, cols), magnitude)
    ours, ref = fast.activation(x, name), REF.activation(x, name)
    assert ours.dtype == np.float32
    _assert_within(ours, ref, _activation_bound(x, ref), name)


def _mask(rng, batch, keys, fully_masked):
    mask = (rng.random((batch, keys)) < 0.7).astype(rng.choice([np.int32, np.int64, np.float32]))
    if fully_masked:
        mask[rng.integers(batch)] = 0
    return mask


def _qkv(rng, batch, heads, queries, keys, head_dim, magnitude):
    """Head-split views of (B, S, H*Dh) arrays, as the model passes them."""
    def split(s, m):
        return _array(rng, (batch, s, heads * head_dim), m).reshape(batch, s, heads, head_dim).transpose(0, 2, 1, 3)

    return split(queries, magnitude), split(keys, magnitude), split(keys, 1.0)


def _probs_bound(q, k, scale):
    """|Δp| <= 2 max|Δscore| per row, and a score can move by (Dh + 2) eps * sum |q_d k_d| * scale."""
    head_dim = q.shape[-1]
    score_bound = (head_dim + 2) * EPS * scale * (np.abs(q) @ np.abs(k).transpose(0, 1, 3, 2))
    return 2 * score_bound.max(axis=-1, keepdims=True) + 8 * EPS


@SETTINGS
@given(pooled=st.booleans(), seed=seeds, batch=st.integers(1, 3), heads=st.integers(1, 4), queries=small, keys=small,
       head_dim=st.integers(1, 13), magnitude=st.sampled_from([1e-3, 1.0, 3.0]), fully_masked=st.booleans())
def test_attention_probs(pooled, seed, batch, heads, queries, keys, head_dim, magnitude, fully_masked):
    fast = POOLED if pooled else FAST
    rng = np.random.default_rng(seed)
    q, k, _ = _qkv(rng, batch, heads, queries, keys, head_dim, magnitude)
    mask = _mask(rng, batch, keys, fully_masked)
    scale = 1.0 / np.sqrt(head_dim)
    ours = fast.attention_probs(q, k, mask, scale)
    ref = REF.attention_probs(q, k, mask, scale)
    _assert_within(ours, ref, _probs_bound(q, k, scale), "attention_probs")


@SETTINGS
@given(pooled=st.booleans(), seed=seeds, batch=st.integers(1, 2), heads=st.integers(1, 3), queries=small, keys=small,
       head_dim=st.integers(1, 9), fully_masked=st.booleans())
def test_attention_probs_large_scores(pooled, seed, batch, heads, queries, keys, head_dim, fully_masked):
    fast = POOLED if pooled else FAST
    """Scores in the millions: no overflow or NaN, rows still sum to 1, the same winner as the reference."""
    rng = np.random.default_rng(seed)
    q, k, _ = _qkv(rng, batch, heads, queries, keys, head_dim, 1e3)
    mask = _mask(rng, batch, keys, fully_masked)
    ours = fast.attention_probs(q, k, mask, 1.0)
    ref = REF.attention_probs(q, k, mask, 1.0)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours.sum(axis=-1), 1.0, rtol=1e-5)
    clear = np.sort(ref, axis=-1)[..., -1] > 0.99  # a clear winner (no near-tie that rounding could flip)
    np.testing.assert_array_equal(ours.argmax(-1)[clear], ref.argmax(-1)[clear])


@SETTINGS
@given(pooled=st.booleans(), seed=seeds, batch=st.integers(1, 3), heads=st.integers(1, 4), queries=small, keys=small,
       head_dim=st.integers(1, 13), magnitude=magnitudes)
def test_attention_context(pooled, seed, batch, heads, queries, keys, head_dim, magnitude):
    fast = POOLED if pooled else FAST
    rng = np.random.default_rng(seed)
    probs = rng.random((batch, heads, queries, keys)).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    v = _array(rng, (batch, keys, heads, head_dim), magnitude).transpose(0, 2, 1, 3)
    ours = fast.attention_context(probs, v)
    ref = REF.attention_context(probs, v)
    _assert_within(ours, ref, (keys + 2) * EPS * (probs @ np.abs(v)) + 1e-37, "attention_context")


@SETTINGS
@given(pooled=st.booleans(), seed=seeds, batch=st.integers(1, 3), heads=st.integers(1, 4), queries=small, keys=small,
       head_dim=st.integers(1, 13), magnitude=st.sampled_from([1e-3, 1.0, 3.0]), fully_masked=st.booleans())
def test_fused_attention(pooled, seed, batch, heads, queries, keys, head_dim, magnitude, fully_masked):
    fast = POOLED if pooled else FAST
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, batch, heads, queries, keys, head_dim, magnitude)
    mask = _mask(rng, batch, keys, fully_masked)
    scale = 1.0 / np.sqrt(head_dim)
    ours = fast.attention(q, k, v, mask, scale)
    ref = REF.attention(q, k, v, mask, scale)
    probs = REF.attention_probs(q, k, mask, scale)
    bound = _probs_bound(q, k, scale) * np.abs(v).sum(axis=2, keepdims=True)  # (B, H, S, 1) * (B, H, 1, Dh)
    _assert_within(ours, ref, bound + (keys + 2) * EPS * (probs @ np.abs(v)) + 1e-37, "attention")


@SETTINGS
@given(pooled=st.booleans(), seed=seeds, rows=small, width=st.integers(1, 800), magnitude=magnitudes, residual=st.booleans(),
       eps=st.sampled_from([1e-12, 1e-5]))
def test_layernorm(pooled, seed, rows, width, magnitude, residual, eps):
    fast = POOLED if pooled else FAST
    rng = np.random.default_rng(seed)
    x = _array(rng, (2, rows, width), magnitude)
    r = _array(rng, (2, rows, width), magnitude) if residual else None
    gamma, beta = _array(rng, (width,), 1.0), _array(rng, (width,), 1.0)
    ours = fast.layernorm(x, gamma, beta, eps, residual=r)
    ref = REF.layernorm(x, gamma, beta, eps, residual=r)
    s = x if r is None else x + r
    # (s - mean) / std is ill-conditioned when the row is nearly constant: the bound grows with max|s| / std
    std = np.sqrt(s.astype(np.float64).var(axis=-1, keepdims=True) + eps)
    spread = np.abs(s).max(axis=-1, keepdims=True) / std
    bound = (width + 8) * EPS * spread * np.abs(gamma) + 2 * EPS * np.abs(beta) + 1e-37
    _assert_within(ours, ref, bound, "layernorm")


def test_official_size_shapes():
    """The shapes of the real model (dim 768, 12 heads of 64, FFN 3072) once, against the reference."""
    rng = np.random.default_rng(7)
    batch, seq = 2, 33
    x = _array(rng, (batch, seq, 768), 1.0)
    w1, b1 = _array(rng, (3072, 768), 0.02), _array(rng, (3072,), 0.02)
    np.testing.assert_allclose(FAST.linear(x, w1, b1, "gelu"), REF.linear(x, w1, b1, "gelu"), rtol=1e-5, atol=2e-6)
    q, k, v = _qkv(rng, batch, 12, seq, seq, 64, 1.0)
    mask = np.ones((batch, seq), np.int64)
    mask[1, 20:] = 0
    np.testing.assert_allclose(FAST.attention(q, k, v, mask, 0.125), REF.attention(q, k, v, mask, 0.125),
                               rtol=1e-5, atol=2e-6)
    gamma, beta = _array(rng, (768,), 1.0), _array(rng, (768,), 1.0)
    np.testing.assert_allclose(FAST.layernorm(x, gamma, beta, 1e-12, x[::-1]), REF.layernorm(x, gamma, beta, 1e-12, x[::-1]),
                               rtol=1e-5, atol=1e-5)
