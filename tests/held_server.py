"""A local HTTP file server that holds chosen requests until the test lets them go.

Tests stop a command at an exact point (mid-read of an input) with it instead of guessing
with delays, so they behave the same on an idle or a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from stac_coh.publish.serve import make_app
from tests.services import free_port


class _Hold:
    """ASGI middleware holding the requests ``held(scope)`` picks until ``release`` is set.

    ``arrived`` is set when the first held request comes in: the test then knows exactly
    where the client is (reading the second pair) without guessing with a delay.
    """

    def __init__(self, app, held) -> None:
        self.app, self.held = app, held
        self.arrived, self.release = threading.Event(), threading.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.held(scope):
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
        await self.app(scope, receive, send)


@contextlib.contextmanager
def holding_server(
    root: Path, held: Callable[[dict[str, Any]], bool]
) -> Iterator[tuple[str, _Hold]]:
    """Serve ``root`` over HTTP with Range support (stac-coh's own server), holding some paths."""
    hold = _Hold(make_app(root), held)
    config = uvicorn.Config(hold, host="127.0.0.1", port=free_port(), log_level="error", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started), "test server did not start"
        yield f"http://127.0.0.1:{config.port}", hold
    finally:
        hold.release.set()
        server.should_exit = True
        thread.join(timeout=10)


def wait_until(condition, timeout: float = 120.0) -> bool:
    """Poll ``condition`` (a state, not a duration) until true or ``timeout`` s pass."""
    done = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        done.wait(0.02)
    return True


def scratch_left(*folders: Path) -> list[Path]:
    """Scratch files a run may leave: intermediate rasters, temp dirs, partial writes."""
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.name.startswith((".stac-coh-", "stac-coh-")) or path.suffix == ".tmp":
                found.append(path)
    return found
