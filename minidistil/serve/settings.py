"""The server's options, with TEI's names and defaults, checked once at startup."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ServeSettingsError


@dataclass(frozen=True)
class ServeSettings:
    model: str | None = None  # directory or hub name; None: the installed all-MiniLM-L6-v2
    revision: str | None = None
    task: str | None = None  # None: from the model's files (see tasks.py)
    backend: str | None = None  # numpy | numba | cupy | auto
    threads: int | None = None  # CPU threads of the model worker (None: every core but one)
    quantize: str | None = None  # None (float32) or "int8" (from_pretrained's quantize=)
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_tokens: int = 16384  # padded tokens (rows x longest) per forward pass
    max_batch_requests: int | None = None  # rows per forward pass (None: only the token budget)
    max_concurrent_requests: int = 512  # requests processed at once; more get 429
    max_client_batch_size: int = 32  # inputs per request; more get 413
    payload_limit: int = 2_000_000  # request body bytes; more get 413
    auto_truncate: bool = False  # truncate over-long inputs when a request does not say
    api_key: str | None = None  # when set, inference routes need "Authorization: Bearer <key>"

    def __post_init__(self):
        for name in POSITIVE_OPTIONS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ServeSettingsError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not 0 <= self.port <= 65535:
            raise ServeSettingsError(f"--port must be 0..65535, got {self.port}")
        if self.api_key is not None and not self.api_key.strip():
            raise ServeSettingsError("--api-key is empty")


POSITIVE_OPTIONS = ("threads", "max_batch_tokens", "max_batch_requests", "max_concurrent_requests",
                    "max_client_batch_size", "payload_limit")
