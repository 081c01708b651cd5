"""The server under load: concurrent clients, overload, clients that leave, SIGTERM.

Bounded: 32 clients x 10 requests, a handful of slow requests; every answer is checked against
the in-process pipeline, and the metrics show that every row was computed once (none lost,
none computed for a client that left).
"""

import json
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from minidistil import pipeline

pytest.register_assert_rewrite("serve_servers")  # its assert_same explains mismatches
from serve_servers import BUSY_LIMIT, assert_same, metric, metrics, wait_for

pytest_plugins = ["serve_servers"]  # the fleet and tiny_dirs fixtures, one instance for every file

CLIENTS, REQUESTS_PER_CLIENT = 32, 8
WORDS = ("the a man woman dog cat runs eats food pasta guitar plays quickly slowly red blue house river city "
         "music film book reads writes under over near far happy sad old new small large").split()


def sentences(n, seed, shortest=3, longest=40):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(shortest, longest))).capitalize() + "."
            for _ in range(n)]


@pytest.fixture(scope="module")
def embedder(minilm_dir):
    return pipeline("sentence-embedding", model=str(minilm_dir), backend="numba", threads=1)


@pytest.fixture(scope="module")
def tiny_embedder(tiny_dirs):
    """What the "busy" server's /embed answers: the small bare encoder as a sentence embedder, normalised
    (TEI's default for /embed; this model has no Normalize module, so the pipeline would not)."""
    pipe = pipeline("sentence-embedding", model=str(tiny_dirs["base"]), backend="numpy", threads=1)
    return lambda text: pipe(text, normalize=True)


@pytest.fixture(scope="module")
def slow_batch(embedder):
    """Six ~100-token texts (a few hundred ms of model time on one thread) and their embeddings."""
    texts = sentences(6, seed=7, shortest=95, longest=100)
    return texts, [embedder(t) for t in texts]


def batch_rows(url):
    return metric(url, "te_batch_next_size_sum")


def test_32_concurrent_clients_every_answer_checked(fleet, embedder):
    server = fleet["minilm"]
    texts = sentences(48, seed=1, longest=10)
    expected = {t: embedder(t) for t in texts}
    rows_before, passes_before = batch_rows(server.url), metric(server.url, "te_batch_next_size_count")

    def client(seed):
        rng = random.Random(seed)
        sent, failures = 0, []
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for n in range(REQUESTS_PER_CLIENT):
                chosen = rng.sample(texts, rng.randint(1, 3))
                route = rng.choice(("/embed", "/v1/embeddings", "/"))
                if route == "/v1/embeddings":
                    response = http.post(route, json={"input": chosen, "model": "m"})
                    got = [d["embedding"] for d in response.json()["data"]] if response.status_code == 200 else None
                else:
                    response = http.post(route, json={"inputs": chosen})
                    got = response.json() if response.status_code == 200 else None
                sent += len(chosen)
                if got is None:
                    failures.append(f"client {seed} request {n}: {response.status_code} {response.text}")
                    continue
                try:
                    assert_same(got, [expected[t] for t in chosen], where=f"client {seed} request {n} {route}")
                except AssertionError as exc:
                    failures.append(str(exc))
        return sent, failures

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    elapsed = time.monotonic() - started
    failures = [f for _, fs in results for f in fs]
    assert not failures, "\n".join(failures[:5])
    rows = sum(sent for sent, _ in results)
    passes = metric(server.url, "te_batch_next_size_count") - passes_before
    assert batch_rows(server.url) - rows_before == rows  # every row computed exactly once
    assert rows / passes > 2, f"{rows} rows in {passes} forward passes: requests were not batched together"
    print(f"{CLIENTS * REQUESTS_PER_CLIENT} requests, {rows} texts in {passes:.0f} passes, {elapsed:.1f} s")


def send_slow(url, texts):
    return httpx.post(url + "/embed", json={"inputs": texts}, timeout=120)


def send_held(url, texts, release):
    """POST /embed whose body is sent in two parts, the second once `release` is set: the request is
    in flight (it holds a place among --max-concurrent-requests) without costing the machine anything."""
    body = json.dumps({"inputs": texts}).encode()

    def parts():
        yield body[:10]
        release.wait(60)
        yield body[10:]

    return httpx.post(url + "/embed", content=parts(), headers={"Content-Type": "application/json"}, timeout=120)


def test_overload_is_answered_429_then_the_server_recovers(fleet, tiny_embedder):
    server = fleet["busy"]
    texts = sentences(2, seed=3)
    expected = [tiny_embedder(t) for t in texts]
    release = threading.Event()
    with ThreadPoolExecutor(BUSY_LIMIT) as pool:
        held = [pool.submit(send_held, server.url, texts, release) for _ in range(BUSY_LIMIT)]
        wait_for(lambda: metric(server.url, "te_request_in_flight") == BUSY_LIMIT, what="the held requests")
        refused = httpx.post(server.url + "/embed", json={"inputs": "one more"}, timeout=30)
        release.set()
        assert refused.status_code == 429, refused.text
        assert refused.json()["error_type"] == "overloaded" and "--max-concurrent-requests" in refused.json()["error"]
        for future in held:
            assert future.result().status_code == 200
            assert_same(future.result().json(), expected)
    recovered = httpx.post(server.url + "/embed", json={"inputs": texts[0]}, timeout=30)
    assert recovered.status_code == 200
    assert_same(recovered.json(), expected[:1])
    assert metric(server.url, "te_request_failure_total", '{err="overloaded"}') == 1


def leave_while_queued(server, busy_texts):
    """Send busy_texts (keeping the model busy), then a request whose client leaves while it waits.

    Returns (whether the server saw the client leave while the busy request was still being computed,
    the busy request's response, rows computed meanwhile).
    """
    rows_before = batch_rows(server.url)
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(send_slow, server.url, busy_texts)
        wait_for(lambda: busy.done() or metric(server.url, "te_request_in_flight") == 1, what="the busy request")
        body = b'{"inputs": ["a request nobody waits for", "and its second text"]}'
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as leaving:
            leaving.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            # or the busy request is done (here and above): if it ends before the server reads this one, the count
            # goes 1 -> 0 -> 1 and never reaches 2; in_time then says so and the caller retries with a longer one.
            wait_for(lambda: busy.done() or metric(server.url, "te_request_in_flight") == 2, what="the second request")
        seen = {}
        # <= 1, not == 1: if the busy request ends first, the left request is dropped at once and the
        # count can go from 2 to 0 between two polls; in_time then says so and the caller retries.
        wait_for(lambda: seen.update(metrics(server.url)) or seen["te_request_in_flight"] <= 1,
                 what="the server to notice the client left")
        in_time = seen["te_batch_next_size_sum"] - rows_before < len(busy_texts)
        response = busy.result()
    # a request the server read after the busy one ended is computed or dropped by now: the next attempt starts clean
    wait_for(lambda: metric(server.url, "te_request_in_flight") == 0, what="the server to finish both requests")
    return in_time, response, batch_rows(server.url) - rows_before


def test_a_request_whose_client_left_costs_no_forward_pass(fleet, slow_batch):
    server = fleet["minilm"]
    texts, expected = slow_batch
    for attempt in range(1, 4):  # the scenario needs the client to leave while the busy request computes
        cancelled_before = metric(server.url, "te_request_failure_total", '{err="cancelled"}')
        busy_texts = texts * 2**attempt
        in_time, response, rows = leave_while_queued(server, busy_texts)
        assert response.status_code == 200
        assert_same(response.json(), expected * 2**attempt)
        if in_time:
            break
    else:
        pytest.fail("the busy request always finished before the server saw the other client leave")
    assert rows == len(busy_texts)  # not one row of the request whose client left
    assert metric(server.url, "te_request_failure_total", '{err="cancelled"}') == cancelled_before + 1
    assert "client went away" in server.log


def test_sigterm_answers_every_request_in_flight(fleet, tiny_embedder):
    """At SIGTERM every request is still sending its body: all are computed and answered after it."""
    server = fleet["busy"]  # the last test of the busy server: it ends with it
    texts = sentences(3, seed=4)
    expected = [tiny_embedder(t) for t in texts]
    release = threading.Event()
    with ThreadPoolExecutor(BUSY_LIMIT) as pool:
        held = [pool.submit(send_held, server.url, texts, release) for _ in range(BUSY_LIMIT)]
        wait_for(lambda: metric(server.url, "te_request_in_flight") == BUSY_LIMIT, what="the requests")
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "Shutting down" in server.log, what="the server to begin its shutdown")
        release.set()
        assert server.terminate(timeout=60) == 0, server.log
        for future in held:
            response = future.result()
            assert response.status_code == 200, response.text
            assert_same(response.json(), expected)
    assert "stopped by SIGTERM" in server.log
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health", timeout=5)
