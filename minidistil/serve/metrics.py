"""Prometheus metrics, named as TEI names them (`te_*`), in a registry of the server's own.

Counters: requests by method (single / batch), successes, failures by kind. Gauges: rows
waiting for the model, requests in flight. Histograms: request duration and its parts
(tokenisation, queue, inference), input tokens, and per forward pass its rows, padded tokens
and duration.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

TOKEN_BUCKETS = tuple(2.0**k for k in range(15))  # 1 .. 16384 tokens
ROW_BUCKETS = tuple(2.0**k for k in range(11))  # 1 .. 1024 rows
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """The server's metrics; `render()` is the text of GET /metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("te_request_count", "Requests received", ["method"], registry=registry)
        self.successes = Counter("te_request_success", "Requests answered", ["method"], registry=registry)
        self.failures = Counter("te_request_failure", "Requests that failed, by kind", ["err"], registry=registry)
        self.in_flight = Gauge("te_request_in_flight", "Requests being processed", registry=registry)
        self.queue_size = Gauge("te_queue_size", "Rows waiting for a forward pass", registry=registry)
        self.dropped_rows = Counter("te_queue_dropped_rows", "Rows dropped because their client went away",
                                    registry=registry)
        self.duration = self._seconds("te_request_duration", "Request duration")
        self.tokenization = self._seconds("te_request_tokenization_duration", "Pre- and post-processing time")
        self.queue = self._seconds("te_request_queue_duration", "Time waiting for the model")
        self.inference = self._seconds("te_request_inference_duration", "Time in forward passes")
        self.input_tokens = Histogram("te_request_input_length", "Tokens per request", buckets=TOKEN_BUCKETS,
                                      registry=registry)
        self.batch_rows = Histogram("te_batch_next_size", "Rows per forward pass", buckets=ROW_BUCKETS,
                                    registry=registry)
        self.batch_tokens = Histogram("te_batch_next_tokens", "Padded tokens per forward pass",
                                      buckets=TOKEN_BUCKETS, registry=registry)
        self.batch_duration = self._seconds("te_batch_inference_duration", "Forward pass duration")

    def _seconds(self, name, documentation):
        return Histogram(name, documentation + " (seconds)", buckets=DURATION_BUCKETS, registry=self.registry)

    def observe_batch(self, rows, tokens, seconds):
        self.batch_rows.observe(rows)
        self.batch_tokens.observe(tokens)
        self.batch_duration.observe(seconds)

    def observe_success(self, method, ticket, total_seconds):
        self.successes.labels(method=method).inc()
        self.duration.observe(total_seconds)
        self.tokenization.observe(ticket.processing_time)
        self.queue.observe(ticket.queue_time)
        self.inference.observe(ticket.inference_time)
        self.input_tokens.observe(ticket.tokens)

    def render(self):
        return generate_latest(self.registry)
