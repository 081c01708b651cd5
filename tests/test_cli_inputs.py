"""One input contract for `--input FILE`, `--input -` and a piped stdin (minidistil/cli_inputs.py).

Every case runs through all three ways in and must give the same stdout, stderr and exit status.
"""

import json

import pytest

from minidistil.cli_inputs import InputError, read_lines, read_text

from pipeline_models import build_model_dir
from test_cli import run

WAYS_IN = ("--input FILE", "--input -", "piped stdin")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return str(build_model_dir("classifier", tmp_path_factory.mktemp("inputs") / "classifier"))


def classify(capsys, monkeypatch, tmp_path, way, data, *options, model):
    """`minidistil classify` of the bytes `data`, given the `way` of WAYS_IN."""
    argv = ["classify", "--model", model, *options]
    if way == "--input FILE":
        path = tmp_path / "inputs.txt"
        path.write_bytes(data)
        return run(capsys, monkeypatch, *argv, "--input", path)
    if way == "--input -":
        return run(capsys, monkeypatch, *argv, "--input", "-", stdin=data)
    return run(capsys, monkeypatch, *argv, stdin=data)


def rows(out):
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("way", WAYS_IN)
def test_blank_lines_are_kept_with_a_null_result(capsys, monkeypatch, tmp_path, classifier, way):
    code, out, err = classify(capsys, monkeypatch, tmp_path, way, b"Good.\n\n  \t\nBad.\r\n", model=classifier)
    assert code == 0, err
    got = rows(out)
    assert [r["input"] for r in got] == ["Good.", "", "  \t", "Bad."]
    assert got[1]["output"] is None and got[2]["output"] is None
    assert got[0]["output"][0]["label"] in {"NEGATIVE", "NEUTRAL", "POSITIVE"}
    alone = rows(classify(capsys, monkeypatch, tmp_path, way, b"Bad.\n", model=classifier)[1])
    assert got[3]["output"] == alone[0]["output"]  # the blank lines changed nothing around them


@pytest.mark.parametrize("way", WAYS_IN)
def test_invalid_utf8_names_the_line_and_column(capsys, monkeypatch, tmp_path, classifier, way):
    data = b"fine\nalso fine\ncaf\xe9 cr\xe8me\n"
    code, out, err = classify(capsys, monkeypatch, tmp_path, way, data, model=classifier)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "line 3 is not UTF-8 (byte(s) e9 at column 4" in err and "--errors replace" in err


@pytest.mark.parametrize("way", WAYS_IN)
def test_errors_replace_reads_bad_bytes_as_the_replacement_character(capsys, monkeypatch, tmp_path, classifier, way):
    code, out, err = classify(capsys, monkeypatch, tmp_path, way, b"caf\xe9\n", "--errors", "replace", model=classifier)
    assert code == 0, err
    assert rows(out)[0]["input"] == "caf\ufffd"


@pytest.mark.parametrize("way", WAYS_IN)
@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf"], ids=["nothing", "only a byte-order mark"])
def test_empty_input_is_an_error(capsys, monkeypatch, tmp_path, classifier, way, data):
    code, out, err = classify(capsys, monkeypatch, tmp_path, way, data, model=classifier)
    assert code == 1 and out == ""
    assert "is empty: no input lines to run" in err


def test_the_three_ways_in_give_the_same_output(capsys, monkeypatch, tmp_path, classifier):
    data = "\ufeffÜber alles.\n\nnaïve café\n".encode("utf-8")  # a byte-order mark, non-ASCII text, a blank line
    outputs = {way: classify(capsys, monkeypatch, tmp_path, way, data, model=classifier) for way in WAYS_IN}
    assert len({(code, out) for code, out, _ in outputs.values()}) == 1
    code, out, _ = outputs["piped stdin"]
    assert code == 0 and [r["input"] for r in rows(out)] == ["Über alles.", "", "naïve café"]


def test_qa_input_lines_follow_the_same_contract(capsys, monkeypatch, tmp_path):
    qa = str(build_model_dir("qa", tmp_path / "qa"))
    item = json.dumps({"question": "Who?", "context": "Rollo led the Normans."})
    code, out, err = run(capsys, monkeypatch, "qa", "--model", qa, stdin=f"{item}\n\n{item}\n")
    assert code == 0, err
    got = rows(out)
    assert [r["output"] is None for r in got] == [False, True, False] and got[0] == got[2]
    code, _, err = run(capsys, monkeypatch, "qa", "--model", qa, stdin=b"")
    assert code == 1 and "stdin is empty" in err


def test_read_lines_directly(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"a\r\nb\n\nc")  # CRLF, a blank line, no newline at the end
    assert read_lines(path, "x") == ["a", "b", "", "c"]
    path.write_bytes(b"a\n\xff\n")
    with pytest.raises(InputError, match=r"x line 2 is not UTF-8 \(byte\(s\) ff at column 1"):
        read_lines(path, "x")
    assert read_lines(path, "x", errors="replace") == ["a", "\ufffd"]
    with pytest.raises(ValueError, match="errors must be one of strict, replace"):
        read_lines(path, "x", errors="ignore")
    with pytest.raises(InputError, match="cannot read x: No such file"):
        read_text(tmp_path / "missing.txt", "x")
