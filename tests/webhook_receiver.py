"""A real webhook receiver for tests: a small Starlette app served by uvicorn on 127.0.0.1, in a thread of its
own. It verifies every request's signature with the endpoint's secret, records what arrived, and answers as
told: 200, or another status (an outage), or slowly."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from api.signing import SIGNATURE_HEADER, signature_problem

__all__ = ["Arrival", "Receiver", "free_port", "webhook_receiver"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Arrival:
    endpoint: str
    event_id: str
    event_type: str
    body: bytes
    problem: str | None  # why the signature was refused; None: it verified
    answered: int  # the status the receiver answered

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    secrets: dict[str, str] = field(default_factory=dict)  # endpoint → the subscription's secret
    answer: int = 200  # what every endpoint answers (after a valid signature)
    delay: float = 0.0  # seconds to wait before answering
    arrivals: list[Arrival] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{endpoint}"

    def at(self, endpoint: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.endpoint == endpoint]

    def delivered(self, endpoint: str) -> Counter[str]:
        """How many times each event id was answered 2xx at the endpoint."""
        return Counter(a.event_id for a in self.at(endpoint) if 200 <= a.answered < 300)

    def types(self, endpoint: str) -> list[str]:
        return [a.event_type for a in self.at(endpoint) if 200 <= a.answered < 300]

    def clear(self) -> None:
        with self._lock:
            self.arrivals.clear()

    async def _hook(self, request: Request) -> PlainTextResponse:
        endpoint = request.path_params["endpoint"]
        body = await request.body()
        secret = self.secrets.get(endpoint)
        problem = "unknown endpoint" if secret is None else signature_problem(
            secret, request.headers.get(SIGNATURE_HEADER), body
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = 400 if problem is not None else self.answer
        with self._lock:
            self.arrivals.append(
                Arrival(endpoint, request.headers.get("Entitle-Event-Id", ""), request.headers.get("Entitle-Event-Type", ""),
                        body, problem, answer)
            )
        return PlainTextResponse(problem or ("ok" if answer < 300 else "receiver unavailable"), status_code=answer)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(free_port())
    app = Starlette(routes=[Route("/hooks/{endpoint}", receiver._hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=receiver.port, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="webhook-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the webhook receiver did not start")
        time.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)
