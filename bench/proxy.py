"""`proxy`: what the metering proxy adds to a model call, against calling the scripted model
server directly, in the same run.

Both sides send the same requests with one `httpx` client per side: a plain call (time to the
whole reply) and a streamed one (time to the first byte of the stream, and to its end). The
rounds interleave the sides so that a machine that slows down mid-run slows both. The proxy
admits every call (the budget check is the harness's business and is timed by `rehydrate`), and
records each call's usage as it does in a session.

The scripted model answers each call after `UPSTREAM_FIRST_BYTE_MS`: a model's time to its first
token, well below the real API's (hundreds of milliseconds), so the first-byte ratio is harsher
here than in use. Against a server that answers at once the ratio would only compare the
proxy's millisecond with loopback's, which says nothing about what a session feels.

Targets: the time the proxy adds to a call (the 95th percentile of plain calls through it, less
the direct calls' 95th percentile) is at most 5 ms, and the
median time to the first streamed byte is at most 1.1 times the direct one.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from longrun.bench.common import Benchmark, median, p95, positive_int, progress, ratio, versions
from longrun.scheduler.endpoints.metering import Metered, MeteringProxy
from longrun.scheduler.endpoints.scripted import ScriptedModelServer, script_from_data

CALLS = 200
TARGET_ADDED_P95_MS = 5.0
TARGET_FIRST_BYTE_RATIO = 1.1
UPSTREAM_FIRST_BYTE_MS = 50
REPLY = "The proxy passes this reply on as it arrives, a few deltas at a time. " * 4

HEADERS = {"x-api-key": "bench-key", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def _body(stream: bool) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": "benchmark the proxy"}],
    }


def _plain(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    reply = client.post(f"{url}/v1/messages", json=_body(False), headers=HEADERS)
    reply.read()
    if reply.status_code != 200:
        raise RuntimeError(f"plain call answered {reply.status_code}")
    return (time.perf_counter() - started) * 1000


def _streamed(client: httpx.Client, url: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    with client.stream("POST", f"{url}/v1/messages", json=_body(True), headers=HEADERS) as reply:
        for _ in reply.iter_raw():
            if not first:
                first = (time.perf_counter() - started) * 1000
    return first, (time.perf_counter() - started) * 1000


def measure(calls: int) -> dict[str, Any]:
    script = script_from_data(
        {"sessions": [{"turns": [{"text": REPLY, "delay": f"{UPSTREAM_FIRST_BYTE_MS}ms"}] * (4 * calls + 8)}]}
    )
    recorded: list[Metered] = []
    with ScriptedModelServer(script) as server:
        proxy = MeteringProxy(server.base_url, lambda body, _counted: body, recorded.append)
        with proxy, httpx.Client(timeout=30) as direct, httpx.Client(timeout=30) as through:
            for _ in range(4):  # warm both paths up: connections, imports, the first turns
                _plain(direct, server.base_url)
                _plain(through, proxy.base_url)
            progress(f"proxy: {calls} plain and {calls} streamed calls each way")
            plain_direct: list[float] = []
            plain_proxy: list[float] = []
            first_direct: list[float] = []
            first_proxy: list[float] = []
            end_direct: list[float] = []
            end_proxy: list[float] = []
            for i in range(calls):
                order = [(direct, server.base_url, False), (through, proxy.base_url, True)]
                for client, url, proxied in order if i % 2 else order[::-1]:
                    (plain_proxy if proxied else plain_direct).append(_plain(client, url))
                    first, end = _streamed(client, url)
                    (first_proxy if proxied else first_direct).append(first)
                    (end_proxy if proxied else end_direct).append(end)
    added_p95 = p95(plain_proxy) - p95(plain_direct)
    first_ratio = ratio(median(first_proxy), median(first_direct))
    streamed = [m for m in recorded if m.streamed]
    return {
        "benchmark": "proxy",
        "calls": calls,
        "upstream_first_byte_ms": UPSTREAM_FIRST_BYTE_MS,
        "plain_direct_median_ms": round(median(plain_direct), 3),
        "plain_proxy_median_ms": round(median(plain_proxy), 3),
        "added_median_ms": round(median(plain_proxy) - median(plain_direct), 3),
        "added_p95_ms": round(added_p95, 3),
        "first_byte_direct_median_ms": round(median(first_direct), 3),
        "first_byte_proxy_median_ms": round(median(first_proxy), 3),
        "first_byte_ratio": first_ratio,
        "stream_end_ratio": ratio(median(end_proxy), median(end_direct)),
        "metered_calls": len(recorded),
        "metered_output_tokens": sum(m.output_tokens for m in streamed),
        "targets": {"added_p95_ms": TARGET_ADDED_P95_MS, "first_byte_ratio": TARGET_FIRST_BYTE_RATIO},
        "meets_targets": added_p95 <= TARGET_ADDED_P95_MS and first_ratio <= TARGET_FIRST_BYTE_RATIO,
        "versions": versions() | {"httpx": httpx.__version__},
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls", type=positive_int, default=CALLS, help=f"calls of each kind each way (default {CALLS})"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    return measure(args.calls)


BENCHMARK = Benchmark(
    name="proxy",
    help="time the metering proxy adds to a call and to the first streamed byte, against the scripted server",
    configure=configure,
    run=run,
)
