"""SQuAD v1.1 dev exact match and F1 of a question-answering checkpoint, as the official v1.1 script scores them.

    python tools/eval/eval_squad.py --model distilbert/distilbert-base-uncased-distilled-squad
    python tools/eval/eval_squad.py --model distilbert/distilbert-base-cased-distilled-squad --backend cupy

Published: distilbert-base-uncased-distilled-squad F1 86.9 (EM 79.1, paper);
distilbert-base-cased-distilled-squad F1 87.1 (card), EM 79.60 / F1 87.00 (independent evaluation).
Answers come from the question-answering pipeline with the SQuAD fine-tuning script's decoding
settings: windows of 384 tokens, stride 128, answers up to 30 tokens. The full dev set
(10,570 questions) takes a while on a CPU: --limit N evaluates the first N questions.
"""

import argparse
import json
import sys
import time

from eval_common import SHARED_DATA, add_model_arguments, load_pipeline, report

DEFAULT_MODEL = "distilbert/distilbert-base-uncased-distilled-squad"
PUBLISHED = {
    "distilbert-base-uncased-distilled-squad": {"f1": 86.9, "exact_match": 79.1},
    "distilbert-base-cased-distilled-squad": {"f1": 87.0, "exact_match": 79.6},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, DEFAULT_MODEL)
    parser.add_argument("--data", default=str(SHARED_DATA / "squad" / "dev-v1.1.json"))
    parser.add_argument("--max-answer-len", type=int, default=30)
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--predictions", help="write {id: answer} here (the official script's input)")
    args = parser.parse_args(argv)

    from minidistil.cli import run_batched
    from minidistil.metrics import squad_questions, squad_v1_scores

    with open(args.data, encoding="utf-8") as f:
        dataset = json.load(f)
    if dataset.get("version") != "1.1":
        print(f"warning: {args.data} says version {dataset.get('version')!r}, not 1.1", file=sys.stderr)
    questions = list(squad_questions(dataset["data"]))[: args.limit]
    qa = load_pipeline("question-answering", args)
    options = dict(max_answer_len=args.max_answer_len, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride)

    def answer(chunk):
        out = qa([{"question": q, "context": c} for _, q, c, _ in chunk], **options)
        return [out] if len(chunk) == 1 else out

    start = time.perf_counter()
    predictions = {
        qid: result["answer"]
        for (qid, _, _, _), result in run_batched(answer, questions, args.batch_size, "squad")
    }
    seconds = time.perf_counter() - start
    if args.predictions:
        with open(args.predictions, "w", encoding="utf-8") as f:
            json.dump(predictions, f, ensure_ascii=False)
    scores = squad_v1_scores(questions, predictions)
    name = str(args.model).rstrip("/").split("/")[-1]
    result = {
        "model": str(args.model),
        "questions": len(questions),
        "exact_match": scores["exact_match"],
        "f1": scores["f1"],
        "seconds": round(seconds, 1),
        "published": PUBLISHED.get(name),
    }
    lines = [f"{result['model']}: {len(questions)} questions, EM {scores['exact_match']:.2f}, F1 {scores['f1']:.2f}"
             f" ({seconds:.0f} s)"]
    if result["published"]:
        lines.append(f"published: EM {result['published']['exact_match']}, F1 {result['published']['f1']}")
    report(args, result, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
