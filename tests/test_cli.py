"""The `minidistil` command: outputs, JSON lines, exit codes and one-line errors."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidistil import cli, pipeline

from pipeline_models import build_model_dir

GOLDEN_PIPELINES = Path(__file__).resolve().parent / "golden" / "pipelines"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    return {name: str(build_model_dir(name, root / name)) for name in ("mlm", "classifier", "ner", "qa")}


class _Stdin(io.TextIOWrapper):
    """A stdin with bytes below it, as a real pipe has (the CLI decodes the bytes itself)."""

    def __init__(self, data=b"", tty=False):
        super().__init__(io.BytesIO(data.encode("utf-8") if isinstance(data, str) else data), encoding="utf-8")
        self._tty = tty

    def isatty(self):
        return self._tty


def run(capsys, monkeypatch, *argv, stdin=None, tty=True):
    """cli.main(argv) with `stdin` (text or bytes) piped in, or a terminal (tty) or empty pipe when None."""
    monkeypatch.setattr(sys, "stdin", _Stdin(stdin or b"", tty=stdin is None and tty))
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def reference_embedding(text):
    """sentence-transformers' MiniLM embedding of `text`, from the pipeline goldens (tools/goldens/make_pipeline_goldens.py)."""
    golden = json.loads((GOLDEN_PIPELINES / "sentence-embedding.json").read_text(encoding="utf-8"))
    for case in golden["cases"]:
        texts = case["call"]["inputs"][0]
        if case["model"] == "all-MiniLM-L6-v2" and isinstance(texts, list) and text in texts:
            return np.asarray(case["output"][texts.index(text)], dtype=np.float64)
    raise AssertionError(f"{text!r} has no MiniLM embedding in the pipeline goldens")


def test_similarity_prints_the_score_of_the_real_model(capsys, monkeypatch, minilm_dir):
    code, out, err = run(capsys, monkeypatch, "similarity", "A man is eating food.", "A man is eating pasta.")
    assert code == 0, err
    a, b = reference_embedding("A man is eating food."), reference_embedding("A man is eating pasta.")
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert float(out) == pytest.approx(cosine, abs=1e-4)  # printed with 4 decimals


def test_similarity_ranks_several_candidates(capsys, monkeypatch, minilm_dir):
    code, out, _ = run(capsys, monkeypatch, "similarity", "--json", "A man is eating food.",
                       "The girl is carrying a baby.", "A man is eating pasta.")
    ranked = json.loads(out)
    assert code == 0 and [r["text"] for r in ranked] == ["A man is eating pasta.", "The girl is carrying a baby."]
    assert ranked[0]["score"] > ranked[1]["score"]


def test_search_a_corpus_file(capsys, monkeypatch, tmp_path, minilm_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The stock market fell.\nA kitten purrs on the sofa.\n\nDogs bark at strangers.\n")
    code, out, _ = run(capsys, monkeypatch, "search", "Which animal purrs?", "--corpus", corpus, "--top-k", "2",
                       "--model", minilm_dir)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and lines[0].endswith("A kitten purrs on the sofa.")


def test_embed_one_text_and_json_lines_from_stdin(capsys, monkeypatch, minilm_dir):
    code, out, _ = run(capsys, monkeypatch, "embed", "Hello world")
    vector = json.loads(out)
    assert code == 0 and len(vector) == 384
    code, out, _ = run(capsys, monkeypatch, "embed", "--model", minilm_dir, stdin="Hello world\n\nGoodbye\n")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["input"] for r in rows] == ["Hello world", "", "Goodbye"]  # line N of the output answers line N
    assert rows[1]["output"] is None  # a blank line is not run
    assert np.allclose(rows[0]["output"], vector, atol=1e-6)


def test_fill_mask_table_json_and_batches(capsys, monkeypatch, dirs, tmp_path):
    fill = pipeline("fill-mask", model=dirs["mlm"])
    code, out, _ = run(capsys, monkeypatch, "fill-mask", "--model", dirs["mlm"], "--top-k", 2, "Hello [MASK]!")
    assert code == 0 and len(out.splitlines()) == 2
    assert out.splitlines()[0].split()[1] == fill("Hello [MASK]!")[0]["token_str"]
    code, out, _ = run(capsys, monkeypatch, "fill-mask", "--model", dirs["mlm"], "--json", "Hello [MASK]!")
    assert code == 0 and json.loads(out)[0]["token"] == fill("Hello [MASK]!")[0]["token"]
    texts = tmp_path / "texts.txt"
    texts.write_text("A [MASK].\nThe [MASK] of [MASK].\nOne more [MASK] here.\n")
    code, out, _ = run(capsys, monkeypatch, "fill-mask", "--model", dirs["mlm"], "--input", texts, "--batch-size", 2)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["input"] for r in rows] == texts.read_text().splitlines()
    assert [x["token"] for x in rows[1]["output"][0]] == [x["token"] for x in fill("The [MASK] of [MASK].")[0]]


def test_classify_ner_qa(capsys, monkeypatch, dirs, tmp_path):
    code, out, _ = run(capsys, monkeypatch, "classify", "--model", dirs["classifier"], "--top-k", 0, "Great film!")
    assert code == 0 and sorted(line.split("\t")[0] for line in out.splitlines()) == ["NEGATIVE", "NEUTRAL", "POSITIVE"]
    code, out, _ = run(capsys, monkeypatch, "ner", "--model", dirs["ner"], "--json", "Wolfgang lives in Berlin")
    expected = pipeline("ner", model=dirs["ner"], aggregation_strategy="simple")("Wolfgang lives in Berlin")
    assert code == 0 and [e["word"] for e in json.loads(out)] == [e["word"] for e in expected]
    answer = pipeline("question-answering", model=dirs["qa"])
    # Inputs on the command line run on the numpy backend (cli._backend): the same answer as its pipeline,
    # to the bit (numba's differs in the last float32 bits, by more than approx's 1e-6 on AVX-512).
    on_numpy = pipeline("question-answering", model=dirs["qa"], backend="numpy")
    code, out, _ = run(capsys, monkeypatch, "qa", "--model", dirs["qa"], "--json", "-q", "Who?", "-c", "Rollo led the Normans.")
    assert code == 0 and json.loads(out) == on_numpy(question="Who?", context="Rollo led the Normans.")
    items = [{"question": "Who?", "context": "Rollo led the Normans."}, {"question": "Where?", "context": "In Normandy, France."}]
    questions = tmp_path / "qa.jsonl"
    questions.write_text("".join(json.dumps(item) + "\n" for item in items))
    code, out, _ = run(capsys, monkeypatch, "qa", "--model", dirs["qa"], "--input", questions)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["input"] for r in rows] == items
    assert [r["output"] for r in rows] == [pytest.approx(answer(**item)) for item in items]


# Each text, and the part of it that fits 512 positions: [CLS], 510 word pieces, [SEP] ("A [MASK]." is 3 pieces).
@pytest.mark.parametrize("command, model, text, fits", [
    ("classify", "classifier", "word " * 600, "word " * 510),
    ("fill-mask", "mlm", "A [MASK]. " + "word " * 600, "A [MASK]. " + "word " * 507),
])
def test_truncation_flag(capsys, monkeypatch, dirs, command, model, text, fits):
    code, out, err = run(capsys, monkeypatch, command, "--model", dirs[model], "--json", text)
    assert code == 1 and "tokens long, more than the model's 512 positions" in err and "--truncation" in err
    code, out, err = run(capsys, monkeypatch, command, "--model", dirs[model], "--json", "--truncation", text)
    assert code == 0, err
    code, expected, _ = run(capsys, monkeypatch, command, "--model", dirs[model], "--json", fits)
    assert code == 0 and out == expected


def test_progress_bar_on_stderr_for_batches(capsys, monkeypatch, dirs):
    class TtyErr(io.StringIO):
        def isatty(self):
            return True

    err = TtyErr()
    monkeypatch.setattr(sys, "stderr", err)
    code, out, _ = run(capsys, monkeypatch, "classify", "--model", dirs["classifier"], stdin="Good.\nBad.\nOkay.\n")
    assert code == 0 and len(out.splitlines()) == 3
    assert "3/3" in err.getvalue() and "100.0%" in err.getvalue()


def test_convert(capsys, monkeypatch, dirs, tmp_path):
    code, out, _ = run(capsys, monkeypatch, "convert", dirs["qa"], tmp_path / "out")
    assert code == 0 and out.startswith("wrote ") and (tmp_path / "out" / "model.safetensors").is_file()


def test_download_from_a_local_hub(capsys, monkeypatch, tmp_path):
    from hub_server import HubServer
    from test_sources import CONFIG

    hub = HubServer({"org/tiny": {"config.json": CONFIG, "model.safetensors": b"\0" * 100}})
    try:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        code, out, _ = run(capsys, monkeypatch, "download", "org/tiny")
        assert code == 0 and (tmp_path / "hub" / "models--org--tiny" / "snapshots") in Path(out.strip()).parents
        code, _, err = run(capsys, monkeypatch, "download", "org/unknown")
        assert code == 1 and "unknown model 'org/unknown'" in err
    finally:
        hub.close()


# -------------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["fill-mask", "--top-k"],
        ["fill-mask", "--top-k", "0", "A [MASK]."],
        ["classify", "--top-k", "-1", "x"],
        ["similarity", "only one"],
        ["qa", "--question", "Who?"],
        ["embed", "--threads", "0", "x"],
        ["embed", "--batch-size", "0", "x"],
        ["ner", "--aggregation", "longest", "x"],
        ["embed"],  # no text and stdin is a terminal
        ["init", "x"],  # no --task
        ["init", "x", "--task", "ner", "--seed", "-1"],
    ],
)
def test_bad_usage_exits_2(capsys, monkeypatch, argv):
    code, out, err = run(capsys, monkeypatch, *argv)
    assert code == 2 and out == ""
    assert "usage:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fill-mask", "--model", "{mlm}", "No mask here."], r"no [MASK] token in the input"),
        (["fill-mask", "--model", "{missing}", "A [MASK]."], "no model directory"),
        (["qa", "--model", "{qa}", "-q", "Who?", "-c", ""], "context is empty"),
        (["classify", "--model", "{classifier}", "   "], "text is empty"),
        (["convert", "{missing}", "{missing}-out"], "no model directory"),
        (["classify", "--model", "{classifier}", "--input", "{missing}"], "cannot read --input file '{missing}'"),
        (["qa", "--model", "{qa}", "--input", "{missing}"], "cannot read --input file '{missing}'"),
        (["search", "query", "--model", "{classifier}", "--corpus", "{missing}"], "cannot read --corpus file '{missing}'"),
        (["classify", "--model", "{classifier}", "--input", "{latin1}"], "--input file '{latin1}' line 1 is not UTF-8"),
        (["search", "query", "--model", "{classifier}", "--corpus", "{latin1}"],
         "--corpus file '{latin1}' line 1 is not UTF-8"),
        (["qa", "--model", "{qa}", "-q", "Who?", "-c", "@{missing}"], "cannot read --context file '{missing}'"),
        (["classify", "--model", "{empty_config}", "x"], "config.json is empty"),
    ],
)
def test_model_and_input_errors_exit_1_with_one_line(capsys, monkeypatch, dirs, tmp_path, argv, message):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Café crème\n".encode("latin-1"))
    empty_config = tmp_path / "empty-config"
    empty_config.mkdir()
    (empty_config / "config.json").write_bytes(b"")
    (empty_config / "model.safetensors").write_bytes(Path(dirs["classifier"], "model.safetensors").read_bytes())
    names = dict(dirs, missing=str(tmp_path / "no" / "such" / "dir"), latin1=str(latin1),
                 empty_config=str(empty_config))
    code, out, err = run(capsys, monkeypatch, *[a.format(**names) for a in argv])
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and message.format(**names) in err, err


@pytest.mark.parametrize("where", ["before the command", "after the command", "at the end"])
def test_debug_shows_the_traceback_wherever_it_is(dirs, where):
    command = ["fill-mask", "--model", dirs["mlm"], "No mask."]
    at = {"before the command": 0, "after the command": 1, "at the end": len(command)}[where]
    argv = [sys.executable, "-m", "minidistil.cli", *command[:at], "--debug", *command[at:]]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "PipelineInputError" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "minidistil.cli", *command], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_version(capsys):
    from minidistil import __version__

    with pytest.raises(SystemExit) as exit_info:  # argparse's version action
        cli.build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"minidistil {__version__}\n"
    assert cli.main(["--version"]) == 0
