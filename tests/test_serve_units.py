"""The server's parts without HTTP: batch planning, the batcher, task detection, options, the command."""

import itertools
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidistil import cli, pipeline
from minidistil.serve.batcher import Batcher, BatchingModel, Ticket, current_ticket
from minidistil.serve.errors import RequestCancelled, ServeSettingsError
from minidistil.serve.metrics import ServerMetrics
from minidistil.serve.packing import CostModel, next_batch, plan_batches
from minidistil.serve.settings import ServeSettings
from minidistil.serve.tasks import detect_task

pytest.register_assert_rewrite("serve_servers")  # its assert_same explains mismatches
from serve_servers import TINY_MODELS

pytest_plugins = ["serve_servers"]  # the tiny_dirs fixture

# ------------------------------------------------------------------------------------------ packing


def brute_force_cost(lengths, cost_model, max_tokens, max_rows):
    """Least total cost over every cut of the sorted rows into runs (the plan's claim, checked by enumeration)."""
    ordered = sorted(lengths)
    best = float("inf")
    for cuts in itertools.product((False, True), repeat=len(ordered) - 1):
        runs, run = [], [ordered[0]]
        for cut, length in zip(cuts, ordered[1:]):
            if cut:
                runs.append(run)
                run = []
            run.append(length)
        runs.append(run)
        if all(len(r) * max(r) <= max_tokens and len(r) <= max_rows for r in runs):
            best = min(best, sum(cost_model.cost(len(r), max(r)) for r in runs))
    return best


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 64), min_size=1, max_size=8),
    overhead=st.floats(0, 50),
    max_tokens=st.integers(64, 400),
    max_rows=st.integers(1, 9),
)
def test_the_plan_covers_every_row_within_the_limits_at_least_cost(lengths, overhead, max_tokens, max_rows):
    model = CostModel(overhead=overhead, per_token=1.0)
    passes = plan_batches(lengths, model, max_tokens, max_rows)
    assert sorted(i for p in passes for i in p) == list(range(len(lengths)))
    for rows in passes:
        assert len(rows) <= max_rows and len(rows) * max(lengths[i] for i in rows) <= max_tokens
    cost = sum(model.cost(len(rows), max(lengths[i] for i in rows)) for rows in passes)
    assert cost == pytest.approx(brute_force_cost(lengths, model, max_tokens, max_rows))
    assert 0 in next_batch(lengths, model, max_tokens, max_rows)  # the oldest row runs first


def test_plan_examples():
    cheap_passes, costly_passes = CostModel(5.0, 1.0), CostModel(1000.0, 1.0)
    lengths = [10, 100, 11, 101]
    assert plan_batches(lengths, cheap_passes, 10_000) == [[0, 2], [1, 3]]  # similar lengths together
    assert plan_batches(lengths, CostModel(0.0, 1.0), 10_000) == [[0], [2], [1], [3]]  # free passes: no padding
    assert plan_batches(lengths, costly_passes, 10_000) == [[0, 2, 1, 3]]  # one pass: the overhead dominates
    assert plan_batches(lengths, costly_passes, 202) == [[0, 2], [1, 3]]  # 4 x 101 tokens is over the budget
    assert plan_batches([600], costly_passes, 512) == [[0]]  # longer than the budget: alone
    assert plan_batches([], costly_passes, 512) == []


# ------------------------------------------------------------------------------------------ batcher


def passes_and_rows(metrics):
    sample = metrics.registry.get_sample_value
    return sample("te_batch_next_size_count"), sample("te_batch_next_size_sum")


def test_batcher_runs_rows_of_concurrent_calls_together_and_pads_them_back(tiny_dirs):
    pipe = pipeline("token-classification", model=str(tiny_dirs["ner"]), backend="numpy")
    model, metrics = pipe.model, ServerMetrics()
    first_pass = threading.Event()

    def first_pass_waits_for_every_row(input_ids, **kwargs):
        """The model, whose first pass waits (up to 10 s) until all 8 rows have come: on a busy machine
        the worker could otherwise take each call alone before the next one arrives (seen: 4 passes)."""
        deadline = time.monotonic() + 10
        while not first_pass.is_set() and len(batcher._pending) + len(input_ids) < 8 and time.monotonic() < deadline:
            time.sleep(0.001)
        first_pass.set()
        return model(input_ids=input_ids, **kwargs)

    batcher = Batcher(first_pass_waits_for_every_row, token_outputs=("logits",), pad_id=0,
                      cost_model=CostModel(1.0, 0.0), max_tokens=16384, max_rows=None, metrics=metrics)
    stand_in = BatchingModel(model, batcher)
    rng = np.random.default_rng(0)
    calls = []
    for width in (5, 9, 3, 12):
        ids = rng.integers(1000, 2000, size=(2, width))
        mask = np.ones_like(ids)
        mask[1, width // 2 :] = 0  # the second row is right-padded
        calls.append((ids, mask))
    results, start = [None] * len(calls), threading.Barrier(len(calls))

    def call(n):
        token = current_ticket.set(Ticket())
        start.wait()
        results[n] = stand_in(input_ids=calls[n][0], attention_mask=calls[n][1])
        current_ticket.reset(token)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(calls))]
    batcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    passes, rows = passes_and_rows(metrics)
    assert rows == 8 and passes < 4  # rows of several calls shared passes
    for (ids, mask), result in zip(calls, results):
        direct = model(input_ids=ids, attention_mask=mask, return_numpy=True).logits  # (2, W, labels)
        assert result["logits"].shape == direct.shape
        # Raw logits of this random head reach ~4, and a row padded to another width is summed in another
        # grouping: float32 rounding of the row's scale, so the bound is the project's 1e-4 on logits (seen:
        # 1.2e-5 on a logit of 0.07 beside ones of 4).
        np.testing.assert_allclose(result["logits"][0], direct[0], rtol=1e-5, atol=1e-4)
        kept = int(mask[1].sum())
        np.testing.assert_allclose(result["logits"][1, :kept], direct[1, :kept], rtol=1e-5, atol=1e-4)
        assert not result["logits"][1, kept:].any()  # zeros past the row's tokens (pipelines cut them)


def test_a_cancelled_ticket_never_reaches_the_model(tiny_dirs):
    model = pipeline("feature-extraction", model=str(tiny_dirs["base"]), backend="numpy").model
    metrics = ServerMetrics()
    batcher = Batcher(model, token_outputs=("last_hidden_state",), pad_id=0, cost_model=CostModel(1.0, 0.0),
                      max_tokens=512, max_rows=None, metrics=metrics)
    ticket = Ticket()
    ticket.cancel()
    token = current_ticket.set(ticket)
    batcher.start()
    try:
        with pytest.raises(RequestCancelled):
            BatchingModel(model, batcher)(input_ids=np.ones((1, 4), dtype=np.int64))
    finally:
        current_ticket.reset(token)
        batcher.close()
    assert passes_and_rows(metrics) == (0, 0)


# ------------------------------------------------------------------------------------------ tasks, options


def test_the_task_comes_from_the_model_files(tiny_dirs, minilm_dir, tmp_path):
    expected = {"classifier": "text-classification", "mlm": "fill-mask", "ner": "token-classification",
                "qa": "question-answering", "base": "feature-extraction"}
    assert {name: detect_task(tiny_dirs[name]) for name in TINY_MODELS} == expected
    assert detect_task(minilm_dir) == "sentence-embedding"
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ServeSettingsError, match="--task"):
        detect_task(tmp_path)


@pytest.mark.parametrize("field, value", [("max_batch_tokens", 0), ("max_client_batch_size", -1),
                                          ("threads", True), ("payload_limit", "big"), ("port", 70000),
                                          ("api_key", "  ")])
def test_bad_settings_name_the_option(field, value):
    with pytest.raises(ServeSettingsError, match=field.replace("_", "-")):
        ServeSettings(**{field: value})


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_serve_is_a_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "serve" in out
    code, out, _ = run_cli(capsys, "serve", "--help")
    assert code == 0 and "--max-batch-tokens" in out and "16384" in out and "127.0.0.1" in out


def test_serve_without_the_extra_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)  # as if it were not installed
    code, _, err = run_cli(capsys, "serve")
    assert code == 1 and 'minidistil serve needs the uvicorn package: pip install "minidistil[serve]"' in err


def test_serve_refuses_bad_options_before_loading(capsys, tiny_dirs):
    code, _, err = run_cli(capsys, "serve", "--max-batch-tokens", "0")
    assert code == 1 and "--max-batch-tokens must be a positive integer" in err
    code, _, err = run_cli(capsys, "serve", "--model", tiny_dirs["classifier"], "--backend", "numpy",
                           "--max-batch-tokens", "100")
    assert code == 1 and "--max-batch-tokens 100 is less than the longest input this model takes (512" in err


class _FailingOnce:
    """A model whose first forward pass raises, as a broken backend would."""

    def __init__(self, model):
        self.model, self.config, self.calls = model, model.config, 0

    def __call__(self, **inputs):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("kernel exploded")
        return self.model(**inputs)


def test_a_failed_forward_pass_fails_its_requests_and_the_worker_goes_on(tiny_dirs, caplog):
    from minidistil.serve.app import answer_for

    model = pipeline("feature-extraction", model=str(tiny_dirs["base"]), backend="numpy").model
    batcher = Batcher(_FailingOnce(model), token_outputs=("last_hidden_state",), pad_id=0,
                      cost_model=CostModel(1.0, 0.0), max_tokens=512, max_rows=None, metrics=ServerMetrics())
    ids = np.full((1, 4), 1000, dtype=np.int64)
    token = current_ticket.set(Ticket())
    batcher.start()
    try:
        with pytest.raises(RuntimeError, match="kernel exploded") as failure:
            batcher.run(ids, None)
        again = batcher.run(ids, None)  # the worker survived
    finally:
        current_ticket.reset(token)
        batcher.close()
    np.testing.assert_allclose(again["last_hidden_state"], model(input_ids=ids).last_hidden_state, atol=1e-6)
    error = answer_for(failure.value)
    assert (error.status, error.error_type) == (424, "backend") and "kernel exploded" in error.message
    assert "inference failed" in caplog.text and "forward pass over 1 rows" in caplog.text
