"""`thoughtgraph serve` under load: requests per second and latency percentiles.

Usage: python bench/server.py [--seconds 10] [--part overhead|model|all]

overhead: the scripted test double at zero latency behind a real uvicorn server (so the figures are
the server's own cost: HTTP, JSON, method bookkeeping), 16 concurrent clients, `cot`.
model: the embedded model (llamacpp:smollm2) with `cot` at 1, 4 and 16 concurrent clients, the server
in its own process (`thoughtgraph serve`), as users run it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

import httpx
import numpy as np
import uvicorn

from thoughtgraph.backends.scripted import ScriptedBackend
from thoughtgraph.server import create_app

QUESTION = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"  # noqa: E501


def start_process() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [str(Path(sys.executable).with_name("thoughtgraph")), "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    while True:
        try:
            httpx.get(url + "/models", timeout=1).raise_for_status()
            return process, url
        except httpx.HTTPError:
            time.sleep(0.3)


def start(backend) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(backend, trace_limit=100), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}/v1"


async def load(url: str, clients: int, seconds: float, body: dict) -> dict:
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            while time.monotonic() < until:
                started = time.perf_counter()
                response = await http.post("/chat/completions", json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    until = began + seconds
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.monotonic() - began
    return {
        "clients": clients, "requests": len(latencies), "requests_per_second": round(len(latencies) / elapsed, 2),
        "p50_seconds": round(float(np.percentile(latencies, 50)), 4),
        "p95_seconds": round(float(np.percentile(latencies, 95)), 4),
    }  # fmt: skip


def main(part: str, seconds: float) -> dict:
    body = {"model": "cot", "messages": [{"role": "user", "content": QUESTION}]}
    results = {}
    if part in ("overhead", "all"):
        server, url = start(ScriptedBackend(default="48 / 2 = 24. 48 + 24 = 72.\nThe answer is 72."))
        results["scripted, zero latency"] = [asyncio.run(load(url, n, seconds, body)) for n in (1, 16)]
        server.should_exit = True
    if part in ("model", "all"):
        process, url = start_process()
        asyncio.run(load(url, 1, 1, body))  # warm up
        results["llamacpp:smollm2, cot"] = [asyncio.run(load(url, n, seconds, body)) for n in (1, 4, 16)]
        process.terminate()
        process.wait(30)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["overhead", "model", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.part, arguments.seconds), indent=2))
