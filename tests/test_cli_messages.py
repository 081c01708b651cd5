"""What the command line says on stderr: one-line errors that keep their lists, hints in CLI terms
(missing heads, default models not here), warnings once without source locations, progress in logs."""

import io
import json
import warnings

import numpy as np
import pytest

from minidistil import progress
from minidistil.checkpoints import schema
from minidistil.cli_messages import one_line, show_warnings_once
from minidistil.errors import CheckpointError

from hub_server import COMMIT
from pipeline_models import build_model_dir
from test_cli import run


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("messages")
    return {name: str(build_model_dir(name, root / name)) for name in ("mlm", "classifier")}


@pytest.fixture
def cache_with_a_ner_model(monkeypatch, tmp_path):
    """A hub cache holding org/tagger (a DistilBertForTokenClassification at main), offline."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--org--tagger" / "snapshots" / COMMIT
    build_model_dir("ner", snapshot)
    (cache / "models--org--tagger" / "refs").mkdir()
    (cache / "models--org--tagger" / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


# -------------------------------------------------------------------------------- one-line errors


def mismatch_error(n_missing):
    expected = {f"layer.{i}.weight": (4, 4) for i in range(n_missing)} | {"bias": (4,)}
    state = {"bias": np.zeros(3), "stray.weight": np.zeros((2, 2))}
    with pytest.raises(CheckpointError) as info:
        schema.check_tensors(state, expected, "ckpt")
    return info.value


def test_a_checkpoint_mismatch_keeps_its_tensor_list_on_one_line():
    line = one_line(mismatch_error(2))
    assert line == (
        "ckpt: checkpoint does not match the model: "
        "missing 2 tensor(s): layer.0.weight (4, 4), layer.1.weight (4, 4); "
        "1 tensor(s) with the wrong shape (expected vs got): bias: expected (4,), got (3,); "
        "1 unexpected tensor(s): stray.weight (2, 2)"
    )


def test_long_lists_are_capped_and_counted():
    line = one_line(mismatch_error(40), max_items=5)
    assert "missing 40 tensor(s): layer.0.weight (4, 4)," in line and "layer.4.weight (4, 4), and 35 more;" in line
    assert "layer.5.weight" not in line and "\n" not in line


def test_the_cli_prints_the_tensor_list(capsys, monkeypatch, dirs, tmp_path):
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "broken"
    build_model_dir("classifier", broken)
    tensors = load_file(broken / "model.safetensors")
    del tensors["classifier.weight"]
    tensors["pre_classifier.bias"] = tensors["pre_classifier.bias"][:-1]
    save_file(tensors, broken / "model.safetensors")
    code, out, err = run(capsys, monkeypatch, "classify", "--model", broken, "Fine.")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "missing 1 tensor(s): classifier.weight (3, 32)" in err
    assert "pre_classifier.bias: expected (32,), got (31,)" in err


# -------------------------------------------------------------------------------- heads and default models


def test_a_missing_head_says_which_models_have_it_and_how_to_make_one(capsys, monkeypatch, dirs,
                                                                     cache_with_a_ner_model):
    code, out, err = run(capsys, monkeypatch, "ner", "--model", dirs["mlm"], "Wolfgang lives in Berlin")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{dirs['mlm']} has no token classification head, which `ner` needs" in err
    assert "models here with one: org/tagger (pass --model NAME)" in err
    assert f"`minidistil init DIR --task ner --from {dirs['mlm']}`" in err and "untrained" in err
    assert "fresh_head" not in err  # Python advice is no use on the command line
    code, out, err = run(capsys, monkeypatch, "ner", "--model", "org/tagger", "--json", "Wolfgang lives in Berlin")
    assert code == 0, err  # the model it named works as named
    assert isinstance(json.loads(out), list)


def test_a_default_model_that_is_not_here_gets_the_same_hint(capsys, monkeypatch, cache_with_a_ner_model):
    code, out, err = run(capsys, monkeypatch, "ner", "Wolfgang lives in Berlin")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "the default model of `ner` is not here" in err and "HF_HUB_OFFLINE" in err
    assert "models here with one: org/tagger" in err and "`minidistil init DIR --task ner`" in err


def test_no_model_with_the_head_says_so(capsys, monkeypatch, dirs, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run(capsys, monkeypatch, "qa", "--model", dirs["mlm"], "-q", "Who?", "-c", "Rollo.")
    assert code == 1 and "no model in the Hugging Face cache or in an installed package has one" in err
    assert "--task qa" in err


# -------------------------------------------------------------------------------- warnings


def test_a_warning_is_printed_once_without_its_source_location(capsys, monkeypatch, dirs):
    code, out, err = run(capsys, monkeypatch, "fill-mask", "--model", dirs["mlm"], "--targets", "zzzqx", "hello",
                         "--", "A [MASK].")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines == ["minidistil: warning: target 'zzzqx' is not in the vocabulary: using 'z' instead"]
    assert ".py" not in err


def test_show_warnings_once_keys_on_the_text(capsys):
    show = show_warnings_once()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        for _ in range(3):
            warnings.warn("twice\n  over")  # from one line of code: multi-line text comes out on one line
        warnings.warn("twice\n  over", RuntimeWarning)  # another category, same text
    show("twice\n  over", UserWarning, "elsewhere.py", 7)  # another source location, same text
    assert capsys.readouterr().err == "minidistil: warning: twice: over\n"


# -------------------------------------------------------------------------------- progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_in_a_log_is_a_line_every_interval_and_one_at_the_end(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    log = io.StringIO()  # not a terminal
    bar = progress.Progress(total=100, desc="classify", unit="it", stream=log)
    bar.update(10)
    clock.now += progress.LOG_INTERVAL_S / 2
    bar.update(10)
    assert log.getvalue() == ""  # not yet: a log gets a line per interval, not per batch
    clock.now += progress.LOG_INTERVAL_S
    bar.update(10)
    clock.now += 1
    bar.update(70)
    bar.close()
    assert log.getvalue().splitlines() == [
        "classify 30/100 it (30.0%) in 15.0 s",
        "classify 100/100 it (100.0%) in 16.0 s",
    ]
    assert "\r" not in log.getvalue()


def test_progress_says_nothing_when_nothing_was_done_or_it_is_turned_off(monkeypatch):
    log = io.StringIO()
    progress.Progress(total=3, desc="x", unit="it", stream=log).close()
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    bar = progress.Progress(total=3, desc="x", unit="it", stream=log)
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""


def test_the_cli_reports_batches_on_a_stderr_that_is_not_a_terminal(capsys, monkeypatch, dirs):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    code, out, err = run(capsys, monkeypatch, "classify", "--model", dirs["classifier"], stdin="Good.\nBad.\nOkay.\n")
    assert code == 0 and len(out.splitlines()) == 3
    assert err.startswith("classify 3/3 it (100.0%) in ") and err.count("\n") == 1
