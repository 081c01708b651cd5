"""Request bodies: JSON in, checked values out; a bad body gets an error naming the field.

Shapes are TEI's (router/src/http/types.rs), OpenAI's (`/v1/embeddings`) and the Hugging Face
Inference API's (`POST /`: `{"inputs": ..., "parameters": {...}}`, what huggingface_hub's
InferenceClient sends). Unknown fields are refused rather than ignored, so that a misspelt
option never silently changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import RequestError, empty, invalid, too_large

SIDES = ("right", "left")


@dataclass(frozen=True)
class Limits:
    """What the checks need to know of the server."""

    max_batch: int  # inputs per request (--max-client-batch-size)
    auto_truncate: bool  # the default of `truncate`
    vocab_size: int  # token ids are 0 .. vocab_size - 1


def kind(value):
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def parse_json(raw):
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, nesting too deep
        raise RequestError(400, "validation", f"the request body is not valid JSON: {exc}") from None


def check_object(value, where="the request body"):
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a JSON object, got {kind(value)}")
    return value


class Fields:
    """The fields of a JSON object, taken one by one; `done()` refuses the ones nobody took."""

    def __init__(self, body, where="the request body"):
        self._left = dict(check_object(body, where))
        self._where = where
        self._known = []

    def take(self, name, default=None):
        """The field's value; `default` when it is absent or null."""
        self._known.append(name)
        value = self._left.pop(name, None)
        return default if value is None else value

    def required(self, name):
        if name not in self._left:
            raise invalid(f"{self._where} has no `{name}` field", name)
        return self.take(name)

    def boolean(self, name, default):
        value = self.take(name, default)
        if not isinstance(value, bool) and value is not None:
            raise invalid(f"`{name}` must be true or false, got {kind(value)}", name)
        return value

    def side(self, name="truncation_direction"):
        value = self.take(name, "right")
        if not isinstance(value, str) or value.lower() not in SIDES:
            raise invalid(f"`{name}` must be \"left\" or \"right\", got {json.dumps(value)}", name)
        return value.lower()

    def done(self):
        if self._left:
            names = ", ".join(f"`{n}`" for n in sorted(self._left))
            raise invalid(f"unknown field(s) {names} in {self._where}; known: {', '.join(self._known)}",
                          sorted(self._left)[0])


def check_text(value, field):
    if not isinstance(value, str):
        raise invalid(f"`{field}` must be a string, got {kind(value)}", field)
    if not value.strip():
        raise invalid(f"`{field}` is an empty string", field)
    return value


def check_ids(value, field, vocab_size):
    """A non-empty list of token ids, each in 0 .. vocab_size - 1."""
    if not value:
        raise invalid(f"`{field}` is an empty list of token ids", field)
    for n, token in enumerate(value):
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise invalid(f"`{field}[{n}]` must be a token id in 0..{vocab_size - 1}, got {json.dumps(token)}", field)
    return value


def is_ids(value):
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           for t in value)


def check_batch(items, field, max_batch):
    if not items:
        raise empty(f"`{field}` is an empty list", field)
    if len(items) > max_batch:
        raise too_large(f"`{field}` has {len(items)} items, more than the {max_batch} allowed per request "
                        "(--max-client-batch-size)", field)
    return items


def texts_or_ids(value, field, max_batch, vocab_size=None):
    """(items, single) from a text, a list of token ids, or a list of those (ids only with vocab_size)."""
    if isinstance(value, str):
        return [check_text(value, field)], True
    if vocab_size is not None and is_ids(value):
        return [check_ids(value, field, vocab_size)], True
    if not isinstance(value, list):
        allowed = "a string, a list of token ids, or a list of those" if vocab_size else "a string or a list of strings"
        raise invalid(f"`{field}` must be {allowed}, got {kind(value)}", field)
    check_batch(value, field, max_batch)
    items = []
    for n, item in enumerate(value):
        where = f"{field}[{n}]"
        items.append(check_ids(item, where, vocab_size) if vocab_size is not None and isinstance(item, list)
                     else check_text(item, where))
    return items, False


def text_pair(value, field):
    """TEI's sequence: [text] or [text, text_pair] -> str or (str, str)."""
    if not 1 <= len(value) <= 2:
        raise invalid(f"`{field}` must be [text] or [text, text_pair], got {len(value)} items", field)
    texts = [check_text(t, f"{field}[{n}]") for n, t in enumerate(value)]
    return texts[0] if len(texts) == 1 else tuple(texts)


# ------------------------------------------------------------------------------------------ TEI routes


@dataclass(frozen=True)
class EmbedRequest:
    inputs: list  # texts (str) and token-id lists
    single: bool
    normalize: bool
    truncate: bool
    side: str


def embed_request(body, limits):
    """POST /embed; also `POST /` for sentence embeddings (huggingface_hub's feature_extraction)."""
    fields = Fields(body)
    inputs, single = texts_or_ids(fields.required("inputs"), "inputs", limits.max_batch, limits.vocab_size)
    request = EmbedRequest(
        inputs=inputs,
        single=single,
        normalize=fields.boolean("normalize", True),
        truncate=fields.boolean("truncate", limits.auto_truncate),
        side=fields.side(),
    )
    check_prompt(fields.take("prompt_name"))
    fields.done()
    return request


def check_prompt(prompt_name):
    if prompt_name is not None:
        raise invalid(f"prompt_name {json.dumps(prompt_name)}: prompts are not supported by this server",
                      "prompt_name")


@dataclass(frozen=True)
class PredictRequest:
    inputs: list  # str or (text, text_pair)
    single: bool
    truncate: bool
    raw_scores: bool
    side: str


def predict_request(body, limits):
    """POST /predict: a text, a pair [text, text_pair], or a batch of [text] / [text, text_pair]."""
    fields = Fields(body)
    value = fields.required("inputs")
    if isinstance(value, str):
        inputs, single = [check_text(value, "inputs")], True
    elif isinstance(value, list) and value and isinstance(value[0], str):
        inputs, single = [text_pair(value, "inputs")], True
    elif isinstance(value, list):
        check_batch(value, "inputs", limits.max_batch)
        inputs, single = [], False
        for n, item in enumerate(value):
            if not isinstance(item, list):
                raise invalid(f"`inputs[{n}]` must be [text] or [text, text_pair], got {kind(item)}", "inputs")
            inputs.append(text_pair(item, f"inputs[{n}]"))
    else:
        raise invalid(f"`inputs` must be a text, a pair of texts or a batch of them, got {kind(value)}", "inputs")
    request = PredictRequest(inputs, single, fields.boolean("truncate", limits.auto_truncate),
                             fields.boolean("raw_scores", False), fields.side())
    fields.done()
    return request


@dataclass(frozen=True)
class SimilarityRequest:
    source: str
    sentences: list
    truncate: bool
    side: str


def similarity_request(inputs, parameters, limits):
    """The sentence-similarity payload of `POST /`: {"source_sentence", "sentences"} + parameters."""
    fields = Fields(inputs, "`inputs`")
    source = check_text(fields.required("source_sentence"), "inputs.source_sentence")
    sentences = fields.required("sentences")
    if not isinstance(sentences, list):
        raise invalid(f"`inputs.sentences` must be a list of strings, got {kind(sentences)}", "sentences")
    check_batch(sentences, "inputs.sentences", limits.max_batch - 1)  # the source sentence is one of the batch
    sentences = [check_text(s, f"inputs.sentences[{n}]") for n, s in enumerate(sentences)]
    fields.done()
    options = Fields(parameters, "`parameters`")
    request = SimilarityRequest(source, sentences, options.boolean("truncate", limits.auto_truncate), options.side())
    check_prompt(options.take("prompt_name"))
    options.done()
    return request


@dataclass(frozen=True)
class TokenizeRequest:
    texts: list
    single: bool
    add_special_tokens: bool


def tokenize_request(body, limits):
    fields = Fields(body)
    texts, single = texts_or_ids(fields.required("inputs"), "inputs", limits.max_batch)
    request = TokenizeRequest(texts, single, fields.boolean("add_special_tokens", True))
    check_prompt(fields.take("prompt_name"))
    fields.done()
    return request


@dataclass(frozen=True)
class DecodeRequest:
    ids: list  # lists of token ids
    skip_special_tokens: bool


def decode_request(body, limits, vocab_size):
    fields = Fields(body)
    value = fields.required("ids")
    if is_ids(value):
        ids = [check_ids(value, "ids", vocab_size)]
    elif isinstance(value, list):
        check_batch(value, "ids", limits.max_batch)
        ids = []
        for n, item in enumerate(value):
            if not isinstance(item, list):
                raise invalid(f"`ids[{n}]` must be a list of token ids, got {kind(item)}", "ids")
            ids.append(check_ids(item, f"ids[{n}]", vocab_size))
    else:
        raise invalid(f"`ids` must be a list of token ids or a list of those, got {kind(value)}", "ids")
    request = DecodeRequest(ids, fields.boolean("skip_special_tokens", True))
    fields.done()
    return request


# ------------------------------------------------------------------------------------------ OpenAI


@dataclass(frozen=True)
class OpenAIEmbeddingsRequest:
    inputs: list
    base64: bool
    model: str | None


def openai_embeddings_request(body, limits, dimensions):
    """POST /v1/embeddings: input (text, texts, token ids, lists of token ids), encoding_format, ..."""
    fields = Fields(body)
    inputs, _ = texts_or_ids(fields.required("input"), "input", limits.max_batch, limits.vocab_size)
    encoding = fields.take("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid(f"`encoding_format` must be \"float\" or \"base64\", got {json.dumps(encoding)}",
                      "encoding_format")
    model = fields.take("model")
    if model is not None and not isinstance(model, str):
        raise invalid(f"`model` must be a string, got {kind(model)}", "model")
    wanted = fields.take("dimensions")
    if wanted is not None and wanted != dimensions:
        raise invalid(f"`dimensions` {json.dumps(wanted)}: this model's embeddings have {dimensions} dimensions "
                      "and cannot be shortened", "dimensions")
    user = fields.take("user")
    if user is not None and not isinstance(user, str):
        raise invalid(f"`user` must be a string, got {kind(user)}", "user")
    fields.done()
    return OpenAIEmbeddingsRequest(inputs, encoding == "base64", model)


# ------------------------------------------------------------------------------------------ Inference API

# What `parameters` each task takes in `POST /` (the pipeline checks their values).
TASK_PARAMETERS = {
    "fill-mask": ("top_k", "targets"),
    "text-classification": ("top_k", "function_to_apply"),
    "token-classification": ("aggregation_strategy", "ignore_labels", "stride"),
    "question-answering": ("top_k", "doc_stride", "max_answer_len", "max_seq_len", "max_question_len",
                           "handle_impossible_answer", "align_to_words"),
    "feature-extraction": ("truncate",),
}


@dataclass(frozen=True)
class TaskRequest:
    inputs: object  # what the pipeline takes: a text, a list of texts, a {"question", "context"} dict, ...
    batch: bool
    parameters: dict


def check_task_item(item, task, where):
    """One input of a pipeline task: a text; a {"question", "context"} dict; a {"text", "text_pair"} dict."""
    if task == "question-answering":
        fields = Fields(item, f"`{where}`")
        check_text(fields.required("question"), f"{where}.question")
        check_text(fields.required("context"), f"{where}.context")
        fields.done()
    elif task == "text-classification" and isinstance(item, dict):
        fields = Fields(item, f"`{where}`")
        check_text(fields.required("text"), f"{where}.text")
        pair = fields.take("text_pair")
        if pair is not None:
            check_text(pair, f"{where}.text_pair")
        fields.done()
    else:
        check_text(item, where)


def split_parameters(body):
    """(the body's other fields, its `parameters` object)."""
    rest = dict(check_object(body))
    parameters = rest.pop("parameters", None) or {}
    return rest, check_object(parameters, "`parameters`")


def task_request(body, task, limits):
    """`POST /` for the pipeline tasks: {"inputs": ..., "parameters": {...}}.

    feature-extraction also takes `truncate` at the root, where huggingface_hub sends it.
    """
    rest, parameters = split_parameters(body)
    fields = Fields(rest)
    value = fields.required("inputs")
    if task == "feature-extraction" and "truncate" in rest:
        parameters = {**parameters, "truncate": fields.take("truncate")}
    fields.done()
    batch = isinstance(value, list)
    if batch:
        check_batch(value, "inputs", limits.max_batch)
    for n, item in enumerate(value if batch else [value]):
        check_task_item(item, task, f"inputs[{n}]" if batch else "inputs")
    allowed = TASK_PARAMETERS[task]
    unknown = sorted(set(parameters) - set(allowed))
    if unknown:
        raise invalid(f"unknown parameter(s) {', '.join(unknown)} for {task}; known: {', '.join(allowed)}",
                      unknown[0])
    return TaskRequest(value, batch, {k: v for k, v in parameters.items() if v is not None})


def embedding_task_request(body, limits):
    """`POST /` for sentence embeddings: TEI's /embed fields (at the root or in `parameters`), or
    sentence similarity, {"inputs": {"source_sentence", "sentences"}, "parameters": {...}}."""
    rest, parameters = split_parameters(body)
    if isinstance(rest.get("inputs"), dict):
        fields = Fields(rest)
        request = similarity_request(fields.required("inputs"), parameters, limits)
        fields.done()
        return request
    twice = sorted(set(rest) & set(parameters))
    if twice:
        raise invalid(f"`{twice[0]}` is given both at the root and in `parameters`", twice[0])
    return embed_request({**rest, **parameters}, limits)
