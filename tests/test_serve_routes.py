"""Every route of `minidistil serve` over real HTTP, against the in-process pipeline's result.

Servers: the real all-MiniLM-L6-v2 (sentence embeddings) and small seeded checkpoints with each
head (tests/pipeline_models.py). Clients: httpx, the `openai` client and huggingface_hub's
InferenceClient, as users call them. Every answer must equal what `minidistil.pipeline` gives
in this process for the same input, within 1e-5.
"""

import json
import socket

import httpx
import numpy as np
import pytest

from minidistil import DistilBertTokenizerFast, pipeline

pytest.register_assert_rewrite("serve_servers")  # its assert_same explains mismatches
from serve_servers import API_KEY, assert_same, metric, wait_for

pytest_plugins = ["serve_servers"]  # the fleet and tiny_dirs fixtures, one instance for every file

openai = pytest.importorskip("openai", reason="the openai client is a dev dependency: pip install -e '.[dev]'")
hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub is a dev dependency: pip install -e '.[dev]'")

TEXTS = ["A man is eating food.", "A man is eating pasta.", "The girl is carrying a baby.",
         "Someone is playing the guitar in the rain, loudly and without stopping."]
LONG_TEXT = " ".join(["word"] * 300) + " and a tail that right truncation drops"
TASKS = {"classifier": "text-classification", "mlm": "fill-mask", "ner": "token-classification",
         "qa": "question-answering", "base": "feature-extraction"}


@pytest.fixture(scope="module")
def local(minilm_dir, tiny_dirs):
    """The in-process pipelines the servers must agree with (same backends)."""
    pipes = {"minilm": pipeline("sentence-embedding", model=str(minilm_dir), backend="numba", threads=1)}
    left = DistilBertTokenizerFast.from_pretrained(minilm_dir, truncation_side="left")
    pipes["minilm-left"] = pipeline("sentence-embedding", model=str(minilm_dir), tokenizer=left, backend="numba",
                                    threads=1)
    for name, task in TASKS.items():
        pipes[name] = pipeline(task, model=str(tiny_dirs[name]), backend="numpy", threads=1)
    for quantize in (None, "int8"):
        pipes[f"base-embedder-{quantize}"] = pipeline("sentence-embedding", model=str(tiny_dirs["base"]),
                                                      backend="numpy", threads=1, quantize=quantize)
    return pipes


def post(server, path, body, **kwargs):
    return httpx.post(server.url + path, json=body, timeout=60, **kwargs)


def check_error(response, status, error_type, *words):
    """A JSON error in TEI's shape with this status and type, whose message has these words."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_type"] == error_type, body
    for word in words:
        assert word in body["error"], body
    return body["error"]


# ------------------------------------------------------------------------------------------ TEI


def test_health_info_and_metrics(fleet):
    server = fleet["minilm"]
    for path in ("/health", "/"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200 and response.content == b""
    info = httpx.get(server.url + "/info").json()
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert (info["task"], info["backend"], info["max_input_length"], info["max_batch_tokens"]) == (
        "sentence-embedding", "numba", 256, 16384)
    metrics = httpx.get(server.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "te_request_count_total" in metrics.text and "te_batch_next_size_bucket" in metrics.text
    assert "minidistil serve: model" in server.log and "task sentence-embedding, backend numba, 1 threads" in server.log


def test_embed_equals_the_pipeline(fleet, local):
    server, pipe = fleet["minilm"], local["minilm"]
    one = post(server, "/embed", {"inputs": TEXTS[0]})
    assert one.status_code == 200
    assert_same(one.json(), [pipe(TEXTS[0])])
    for header in ("x-compute-time", "x-queue-time", "x-inference-time", "x-tokenization-time", "x-compute-tokens"):
        assert one.headers[header].isdigit(), header
    assert int(one.headers["x-compute-tokens"]) == len(pipe.tokenizer(TEXTS[0])["input_ids"])
    assert_same(post(server, "/embed", {"inputs": TEXTS}).json(), [pipe(t) for t in TEXTS])
    raw = post(server, "/embed", {"inputs": TEXTS[:2], "normalize": False}).json()
    assert_same(raw, [pipe(t, normalize=False) for t in TEXTS[:2]])
    assert abs(np.linalg.norm(raw[0]) - 1) > 1e-3  # really not normalised


def test_quantize_int8_serves_the_int8_pipeline(fleet, local):
    server = fleet["int8"]
    assert httpx.get(server.url + "/info").json()["model_dtype"] == "int8"
    got = post(server, "/embed", {"inputs": TEXTS, "normalize": False}).json()  # as the pipeline: no Normalize module
    assert_same(got, [local["base-embedder-int8"](t) for t in TEXTS])
    float32 = np.array([local["base-embedder-None"](t) for t in TEXTS])
    assert np.abs(np.subtract(got, float32)).max() > 1e-6  # really quantized, not float32 under another name


def test_embed_truncation(fleet, local):
    server = fleet["minilm"]
    check_error(post(server, "/embed", {"inputs": ["short", LONG_TEXT]}), 413, "validation", "inputs[1]", "truncate")
    right = post(server, "/embed", {"inputs": LONG_TEXT, "truncate": True}).json()
    assert_same(right, [local["minilm"](LONG_TEXT)])
    left = post(server, "/embed", {"inputs": LONG_TEXT, "truncate": True, "truncation_direction": "left"}).json()
    assert_same(left, [local["minilm-left"](LONG_TEXT)])
    assert np.abs(np.subtract(left, right)).max() > 1e-2  # the two sides differ


def test_tokenize_and_decode(fleet, local):
    server, tokenizer = fleet["minilm"], local["minilm"].tokenizer
    text = "Héllo, naïve wörld!"
    tokens = post(server, "/tokenize", {"inputs": [text, "again"]}).json()
    encoding = tokenizer(text, return_offsets_mapping=True)
    assert [t["id"] for t in tokens[0]] == encoding["input_ids"]
    assert tokens[0][0] == {"id": tokenizer.cls_token_id, "text": "[CLS]", "special": True, "start": None, "stop": None}
    for token, (start, stop) in zip(tokens[0][1:-1], encoding["offset_mapping"][1:-1]):
        assert (token["start"], token["stop"], token["text"], token["special"]) == (start, stop, text[start:stop], False)
    bare = post(server, "/tokenize", {"inputs": "again", "add_special_tokens": False}).json()
    assert [t["id"] for t in bare[0]] == tokenizer("again", add_special_tokens=False)["input_ids"]
    ids = encoding["input_ids"]
    assert post(server, "/decode", {"ids": ids}).json() == [tokenizer.decode(ids, skip_special_tokens=True)]
    both = post(server, "/decode", {"ids": [ids, ids[:3]], "skip_special_tokens": False}).json()
    assert both == [tokenizer.decode(ids), tokenizer.decode(ids[:3])]


def test_predict_equals_the_pipeline(fleet, local):
    server, pipe = fleet["classifier"], local["classifier"]
    assert_same(post(server, "/predict", {"inputs": "a fine film"}).json(), pipe("a fine film", top_k=None))
    pair = post(server, "/predict", {"inputs": ["a fine film", "I loved it"]}).json()
    assert_same(pair, pipe({"text": "a fine film", "text_pair": "I loved it"}, top_k=None))
    batch = post(server, "/predict", {"inputs": [["a fine film"], ["dull", "so dull"]], "raw_scores": True}).json()
    assert_same(batch, [pipe("a fine film", top_k=None, function_to_apply="none"),
                        pipe({"text": "dull", "text_pair": "so dull"}, top_k=None, function_to_apply="none")])
    assert [p["score"] for p in batch[0]] == sorted((p["score"] for p in batch[0]), reverse=True)
    assert httpx.get(server.url + "/info").json()["model_type"]["classifier"]["id2label"] == {
        "0": "NEGATIVE", "1": "NEUTRAL", "2": "POSITIVE"}
    long = " ".join(["film"] * 600)
    check_error(post(server, "/predict", {"inputs": long}), 413, "validation", "512")
    cut = post(server, "/predict", {"inputs": long, "truncate": True}).json()
    assert_same(cut, pipe(long, top_k=None, truncation=True, max_length=512))


# ------------------------------------------------------------------------------------------ OpenAI


def test_openai_client_base64_and_float(fleet, local):
    server, pipe = fleet["minilm"], local["minilm"]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    response = client.embeddings.create(input=TEXTS[:3], model="all-MiniLM-L6-v2")  # base64, as the client asks
    assert [d.index for d in response.data] == [0, 1, 2] and response.model == "all-MiniLM-L6-v2"
    assert_same([d.embedding for d in response.data], [pipe(t) for t in TEXTS[:3]])
    tokens = sum(len(pipe.tokenizer(t)["input_ids"]) for t in TEXTS[:3])
    assert response.usage.prompt_tokens == response.usage.total_tokens == tokens
    floats = client.embeddings.create(input=TEXTS[3], model="m", encoding_format="float")
    assert_same(floats.data[0].embedding, pipe(TEXTS[3]))
    raw = post(server, "/v1/embeddings", {"input": "x", "encoding_format": "base64"}).json()
    assert isinstance(raw["data"][0]["embedding"], str) and raw["object"] == "list"


def test_openai_token_ids_are_the_model_input(fleet, local):
    server, pipe = fleet["minilm"], local["minilm"]
    ids = [pipe.tokenizer(t)["input_ids"] for t in TEXTS[:2]]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    one = client.embeddings.create(input=ids[0], model="m", encoding_format="float")
    assert_same(one.data[0].embedding, pipe(TEXTS[0]))
    both = client.embeddings.create(input=ids, model="m")
    assert_same([d.embedding for d in both.data], [pipe(t) for t in TEXTS[:2]])


def test_openai_errors_in_openai_shape(fleet):
    client = openai.OpenAI(base_url=fleet["minilm"].url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as empty:
        client.embeddings.create(input=[], model="m")
    assert "empty" in str(empty.value)
    with pytest.raises(openai.UnprocessableEntityError) as wrong:
        client.embeddings.create(input="x", model="m", dimensions=100)
    assert "384 dimensions" in str(wrong.value)
    response = post(fleet["minilm"], "/v1/embeddings", {"input": [99999999]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "validation" and error["code"] == 422 and "token id" in error["message"]
    assert httpx.get(fleet["minilm"].url + "/v1/models").json()["error"]["type"] == "not_found"


# ------------------------------------------------------------------------------------------ Inference API


def test_inference_client_embeddings_and_similarity(fleet, local):
    pipe = local["minilm"]
    client = hub.InferenceClient(model=fleet["minilm"].url)
    vector = client.feature_extraction(TEXTS[0])
    assert vector.shape == (1, 384)
    assert_same(vector, [pipe(TEXTS[0])])
    assert_same(client.feature_extraction(TEXTS[1], normalize=False), [pipe(TEXTS[1], normalize=False)])
    scores = client.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:])
    vectors = pipe(TEXTS, normalize=False).astype(np.float64)
    cosines = vectors[1:] @ vectors[0] / (np.linalg.norm(vectors[1:], axis=1) * np.linalg.norm(vectors[0]))
    assert_same(scores, cosines.tolist())
    assert round(scores[0], 4) == 0.7035  # sentence-transformers: 0.70354867


def test_inference_client_text_classification(fleet, local):
    pipe = local["classifier"]
    client = hub.InferenceClient(model=fleet["classifier"].url)
    for options in ({}, {"top_k": 2}, {"top_k": 3, "function_to_apply": "sigmoid"}):
        got = [dict(label=e.label, score=e.score) for e in client.text_classification("a fine film", **options)]
        expected = pipe("a fine film", **options)
        assert_same(got, expected, where=str(options))
    raw = post(fleet["classifier"], "/", {"inputs": ["good", {"text": "bad", "text_pair": "awful"}]}).json()
    assert_same(raw, [pipe("good"), [pipe({"text": "bad", "text_pair": "awful"})]])


def test_inference_client_fill_mask(fleet, local):
    pipe = local["mlm"]
    client = hub.InferenceClient(model=fleet["mlm"].url)
    text = "Paris is the [MASK] of France."
    for options in ({}, {"top_k": 3}, {"targets": ["city", "capital"]}):
        got = [{k: e[k] for k in ("score", "token", "token_str", "sequence")} for e in client.fill_mask(text, **options)]
        assert_same(got, pipe(text, **options), where=str(options))
    two = post(fleet["mlm"], "/", {"inputs": "The [MASK] sat on the [MASK]."}).json()
    assert_same(two, pipe("The [MASK] sat on the [MASK]."))


def test_inference_client_token_classification(fleet, local):
    pipe = local["ner"]
    client = hub.InferenceClient(model=fleet["ner"].url)
    text = "Wolfgang lives in Berlin and works for Siemens."
    for options in ({}, {"aggregation_strategy": "simple"}, {"aggregation_strategy": "first", "ignore_labels": []}):
        expected = pipe(text, **options)
        got = [{k: e[k] for k in expected[0]} for e in client.token_classification(text, **options)] if expected else []
        assert_same(got, expected, where=str(options))


def test_inference_client_question_answering(fleet, local):
    pipe = local["qa"]
    client = hub.InferenceClient(model=fleet["qa"].url)
    question, context = "Where does Anna live?", "Anna lives in Berlin. Her brother Tom lives in Paris."
    answer = client.question_answering(question=question, context=context)
    assert_same({k: answer[k] for k in ("score", "start", "end", "answer")}, pipe(question=question, context=context))
    several = post(fleet["qa"], "/", {"inputs": {"question": question, "context": context},
                                      "parameters": {"top_k": 3, "max_answer_len": 4}}).json()
    assert_same(several, pipe(question=question, context=context, top_k=3, max_answer_len=4))


def test_inference_client_feature_extraction_of_a_bare_encoder(fleet, local):
    pipe = local["base"]
    client = hub.InferenceClient(model=fleet["base"].url, token=API_KEY)  # this server has an API key
    hidden = client.feature_extraction("Hello world, again.")
    assert hidden.shape == (1, len(pipe.tokenizer("Hello world, again.")["input_ids"]), 32)
    assert_same(hidden, pipe("Hello world, again."))
    texts = ["one", "two words here"]
    answer = post(fleet["base"], "/", {"inputs": texts}, headers={"Authorization": f"Bearer {API_KEY}"})
    assert_same(answer.json(), pipe(texts))


# ------------------------------------------------------------------------------------------ errors


BAD_EMBED_BODIES = [
    (b"{not json", 400, "validation", ("not valid JSON",)),
    (b'{"inputs": ' + b"[" * 100000 + b"]" * 100000 + b"}", 400, "validation", ("not valid JSON",)),
    (b"[1, 2]", 422, "validation", ("JSON object",)),
    (b"{}", 422, "validation", ("`inputs`",)),
    (b'{"inputs": 3}', 422, "validation", ("`inputs` must be",)),
    (b'{"inputs": NaN}', 422, "validation", ("`inputs` must be",)),
    (b'{"inputs": []}', 400, "empty", ("empty list",)),
    (b'{"inputs": ["ok", ""]}', 422, "validation", ("`inputs[1]` is an empty string",)),
    (b'{"inputs": ["ok", 7]}', 422, "validation", ("`inputs[1]`",)),
    (b'{"inputs": "x", "normalise": true}', 422, "validation", ("`normalise`",)),
    (b'{"inputs": "x", "normalize": "yes"}', 422, "validation", ("`normalize`",)),
    (b'{"inputs": "x", "truncation_direction": "up"}', 422, "validation", ("truncation_direction",)),
    (b'{"inputs": "x", "prompt_name": "query"}', 422, "validation", ("prompt",)),
    (b'{"inputs": [1, 2, 40000]}', 422, "validation", ("token id",)),
    (json.dumps({"inputs": ["t"] * 33}).encode(), 413, "validation", ("33 items", "32",)),
]


@pytest.mark.parametrize("body, status, error_type, words", BAD_EMBED_BODIES,
                         ids=[str(b[:24]) for b, *_ in BAD_EMBED_BODIES])
def test_bad_embed_bodies_get_named_errors(fleet, body, status, error_type, words):
    response = httpx.post(fleet["minilm"].url + "/embed", content=body, timeout=30)
    check_error(response, status, error_type, *words)


def test_bad_bodies_for_the_other_tasks(fleet):
    check_error(post(fleet["mlm"], "/", {"inputs": "no mask here"}), 422, "validation", "[MASK]")
    check_error(post(fleet["mlm"], "/", {"inputs": "a [MASK]", "parameters": {"batch_size": 1000}}), 422,
                "validation", "batch_size", "top_k")
    check_error(post(fleet["mlm"], "/", {"inputs": "a [MASK]", "parameters": {"top_k": 0}}), 422, "validation",
                "top_k")
    check_error(post(fleet["qa"], "/", {"inputs": {"question": "Who?"}}), 422, "validation", "context")
    check_error(post(fleet["qa"], "/", {"inputs": "Who?"}), 422, "validation", "JSON object")
    check_error(post(fleet["classifier"], "/", {"inputs": "x", "parameters": {"function_to_apply": "tanh"}}), 422,
                "validation", "function_to_apply")
    check_error(post(fleet["classifier"], "/predict", {"inputs": ["a", "b", "c"]}), 422, "validation",
                "[text, text_pair]")
    check_error(post(fleet["ner"], "/", {"inputs": "x", "parameters": {"aggregation_strategy": "most"}}), 422,
                "validation", "aggregation_strategy")
    check_error(post(fleet["classifier"], "/embed", {"inputs": "x"}), 424, "backend", "/embed", "text-classification")
    check_error(post(fleet["minilm"], "/predict", {"inputs": "x"}), 424, "backend", "/predict")
    check_error(httpx.get(fleet["minilm"].url + "/embed"), 405, "method_not_allowed", "GET /embed")
    check_error(httpx.post(fleet["minilm"].url + "/nowhere", json={}), 404, "not_found", "/nowhere")


def test_payload_limit(fleet):
    big = json.dumps({"inputs": "word " * 500_000}).encode()  # 2.5 MB, past the 2 MB default
    check_error(httpx.post(fleet["minilm"].url + "/embed", content=big, timeout=30), 413, "validation",
                "--payload-limit")

    def chunks():  # no content-length: the limit applies while the body streams in
        for _ in range(30):
            yield b" " * 100_000

    check_error(httpx.post(fleet["minilm"].url + "/embed", content=chunks(), timeout=30), 413, "validation",
                "--payload-limit")


def test_a_client_that_leaves_mid_upload_is_no_error(fleet):
    server = fleet["minilm"]
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as leaving:
        leaving.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inputs\": ")
        wait_for(lambda: metric(server.url, "te_request_in_flight") == 1, what="the request")
    wait_for(lambda: metric(server.url, "te_request_in_flight") == 0, what="the server to see the client leave")
    assert "POST /embed 499" in server.log


def test_api_key(fleet, local):
    server = fleet["base"]
    body = {"inputs": "Hello world, again."}
    check_error(post(server, "/", body), 401, "unauthorized", "API key")
    check_error(post(server, "/", body, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    check_error(httpx.get(server.url + "/info"), 401, "unauthorized")
    assert post(server, "/", body, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    for path in ("/health", "/metrics"):
        assert httpx.get(server.url + path).status_code == 200
    hidden = hub.InferenceClient(model=server.url, token=API_KEY).feature_extraction(body["inputs"])
    assert_same(hidden, local["base"](body["inputs"]))
    with pytest.raises(hub.errors.HfHubHTTPError):
        hub.InferenceClient(model=server.url, token="wrong").feature_extraction(body["inputs"])
    assert metric(server.url, "te_request_failure_total", '{err="unauthorized"}') >= 3


def test_no_request_got_a_500(fleet):
    """Every request of this file was answered by design: the servers logged no traceback."""
    for name, server in fleet.items():
        assert "Traceback" not in server.log, f"{name}:\n{server.log}"
        assert " 500 " not in server.log, f"{name}:\n{server.log}"
