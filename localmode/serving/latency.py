"""Timing the in-process pipeline one record at a time (for tests and `make bench`)."""
from __future__ import annotations

import gc
import time
from typing import Callable, Iterable

from localmode.serving.containers import TEXT_CSV, InferencePipeline


def summarize(samples_ns: list[int]) -> dict:
    ordered = sorted(samples_ns)
    return {
        "p50_us": round(ordered[len(ordered) // 2] / 1000, 2),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000, 2),
        "calls": len(ordered),
    }


def time_calls(call: Callable[[object], object], inputs: Iterable, repeat: int = 3, warmup: int = 50) -> dict:
    """Per-call latency of `call(x)` over every input, `repeat` times (garbage collection paused)."""
    inputs = list(inputs)
    for x in inputs[:warmup]:
        call(x)
    samples = []
    clock = time.perf_counter_ns
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for x in inputs:
                started = clock()
                call(x)
                samples.append(clock() - started)
    finally:
        if was_enabled:
            gc.enable()
    return summarize(samples)


def pipeline_latency(pipeline: InferencePipeline, lines: list[str], repeat: int = 3) -> dict:
    """p50/p99 per record of the whole pipeline and of each container on its real input."""
    results = {"pipeline": time_calls(pipeline.predict_csv_line, lines, repeat)}
    requests = [(line.encode("utf-8"), TEXT_CSV) for line in lines]
    last = len(pipeline.containers) - 1
    for index, (container, hostname) in enumerate(zip(pipeline.containers, pipeline.hostnames)):
        def call(request, container=container):
            return container.invoke(request[0], request[1], None)

        results[f"{hostname} ({container.kind})"] = time_calls(call, requests, repeat)
        if index < last:
            responses = [call(request) for request in requests]
            requests = [(r.body, r.content_type) for r in responses if r.ok]
    return results


def http_load(url: str, endpoint_name: str, bodies: list[bytes], clients: int = 1, rounds: int = 1,
              content_type: str = TEXT_CSV) -> dict:
    """InvokeEndpoint over HTTP with `clients` keep-alive connections in parallel, each sending
    every body `rounds` times: per-request p50/p99 in ms and requests per second overall.
    Plain http.client, so the numbers are the server's, not a client SDK's."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    path = f"/endpoints/{endpoint_name}/invocations"
    def client() -> tuple[list[int], list[str]]:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        samples, failures = [], []
        try:
            for _ in range(rounds):
                for body in bodies:
                    started = time.perf_counter_ns()
                    connection.request("POST", path, body, {"Content-Type": content_type})
                    response = connection.getresponse()
                    response.read()
                    samples.append(time.perf_counter_ns() - started)
                    if response.status != 200:
                        failures.append(f"HTTP {response.status}")
        finally:
            connection.close()
        return samples, failures

    return run_clients([client] * clients)


def run_clients(clients: list[Callable[[], tuple[list[int], list[str]]]]) -> dict:
    """Runs each client in its own thread at once; each returns its latency samples (ns) and
    failures. Per-request p50/p99 in ms, and requests per second over the whole run."""
    import threading

    results: list[tuple[list[int], list[str]]] = [([], [])] * len(clients)

    def run(index: int, client) -> None:
        results[index] = client()

    threads = [threading.Thread(target=run, args=(i, client)) for i, client in enumerate(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    samples = [sample for mine, _ in results for sample in mine]
    failures = [failure for _, theirs in results for failure in theirs]
    summary = summarize(samples)
    return {"p50_ms": round(summary["p50_us"] / 1000, 3), "p99_ms": round(summary["p99_us"] / 1000, 3),
            "requests": len(samples), "rps": round(len(samples) / elapsed, 1), "clients": len(clients),
            "failures": len(failures)}
