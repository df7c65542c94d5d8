"""How much flow2 runs embedded in a service slow the service's other requests.

A plain asyncio HTTP service answers ``GET /health`` while, in the same
event loop, it runs 4 concurrent jobs of 20 sync tasks each, over and
over: once as flow2 runs (``flow2.Runner().execute``, the defaults a
service gets: nothing printed, the shared thread pool), once as the same
work handed to ``asyncio.to_thread`` directly. A client thread requests
``/health`` back to back and times each answer. The two variants are
interleaved, ``--repeat`` times each; the figure is the median over the
rounds of each variant's p95 latency, and their ratio.

    python benchmarks/bench_embedding.py [--repeat 7] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import flow2

JOBS = 4
TASKS_PER_JOB = 20


def work(context: dict[str, Any]) -> str:
    """A sync task: a little CPU and a little waiting, as a real chore has."""
    digest = b"flow2"
    for _ in range(200):
        digest = hashlib.sha256(digest).digest()
    time.sleep(0.005)
    return digest.hex()[:8]


async def flow2_job(number: int) -> None:
    tree = flow2.ParallelTaskGroup(
        f"Job {number}", *(flow2.CallbackTask(f"Step {n}", work) for n in range(TASKS_PER_JOB))
    )
    result = await flow2.Runner().execute(tree)
    assert result.succeeded, result


async def to_thread_job(number: int) -> None:
    await asyncio.gather(*(asyncio.to_thread(work, {}) for _ in range(TASKS_PER_JOB)))


async def _health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            if not request:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _client(port: int, stop: threading.Event, latencies: list[float]) -> None:
    """Request /health back to back on one connection, timing each answer."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        while not stop.is_set():
            started = time.perf_counter()
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while not received.endswith(b"ok"):
                received += connection.recv(4096)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)


async def _round(job: Callable[[int], Coroutine[Any, Any, None]], seconds: float) -> float:
    """The p95 /health latency while ``job`` runs JOBS at a time for ``seconds``."""
    server = await asyncio.start_server(_health, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    latencies: list[float] = []
    stop = threading.Event()
    client = threading.Thread(target=_client, args=(port, stop, latencies))
    client.start()
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            await asyncio.gather(*(job(number) for number in range(JOBS)))
    finally:
        stop.set()
        await asyncio.to_thread(client.join)
        server.close()
        await server.wait_closed()
    return statistics.quantiles(latencies, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds of each variant")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each round")
    options = parser.parse_args()
    variants = {"flow2 runs": flow2_job, "asyncio.to_thread": to_thread_job}
    p95: dict[str, list[float]] = {name: [] for name in variants}
    asyncio.run(_round(to_thread_job, 0.5))  # warm up: threads, imports
    for _ in range(options.repeat):
        for name, job in variants.items():
            p95[name].append(asyncio.run(_round(job, options.seconds)))
    medians = {name: statistics.median(values) for name, values in p95.items()}
    for name, value in medians.items():
        print(f"{name:>18}: /health p95 {value * 1000:7.2f} ms (median of {options.repeat})")
    ratio = medians["flow2 runs"] / medians["asyncio.to_thread"]
    print(f"ratio: {ratio:.2f}x (target: at most 1.5x)")
    sys.exit(0)


if __name__ == "__main__":
    main()
