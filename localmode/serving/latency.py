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
