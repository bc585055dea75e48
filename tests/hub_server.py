"""A local stand-in for the Hugging Face Hub: the few HTTP routes huggingface_hub's downloads use.

The real ``huggingface_hub`` client talks to it (``HF_ENDPOINT=http://127.0.0.1:PORT``), so
the cache it writes is the real cache layout; only the HTTP boundary is replaced. Served:
repository info (``/api/models/<repo>/revision/<rev>``), the file tree
(``/api/models/<repo>/tree/<rev>``) and files (``HEAD``/``GET /<repo>/resolve/<rev>/<file>``).
Every request is recorded, so tests can count downloads.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["HubRepo", "LocalHub", "repo_from_folder", "serve_hub"]

_INFO = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)")
_TREE = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/.*)?")
_FILE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")


@dataclass(frozen=True)
class HubRepo:
    """One model repository at one commit."""

    repo_id: str
    """``owner/name``."""
    commit: str
    """40 hex digits; ``main`` resolves to it."""
    files: Mapping[str, bytes]
    """Path in the repository -> content."""


@dataclass
class LocalHub:
    """The running server: its endpoint and what it was asked."""

    endpoint: str
    repos: dict[str, HubRepo]
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request, in order."""

    def downloads(self, filename: str) -> int:
        """GET requests for a file's content (any repository, any revision)."""
        found = [_FILE.fullmatch(path) for method, path in self.requests if method == "GET"]
        return sum(1 for match in found if match and match["file"] == filename)

    def env(self) -> dict[str, str]:
        """What a process needs to use this hub (online)."""
        return {"HF_ENDPOINT": self.endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}


def _handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``hub.requests`` instead."""

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _answer(self, *, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(("HEAD" if head else "GET", path))
            if match := _INFO.fullmatch(path):
                repo = self._repo(match)
                if repo:
                    siblings = [{"rfilename": name} for name in sorted(repo.files)]
                    self._json({"id": repo.repo_id, "sha": repo.commit, "siblings": siblings})
            elif match := _TREE.fullmatch(path):
                repo = self._repo(match)
                if repo:
                    self._json([_entry(name, data) for name, data in sorted(repo.files.items())])
            elif match := _FILE.fullmatch(path):
                repo = self._repo(match)
                data = repo.files.get(match["file"]) if repo else None
                if repo and data is None:
                    self._error(404, "EntryNotFound")
                elif repo and data is not None:
                    self._file(repo, data, head)
            else:
                self._error(404, "RepoNotFound")

        def _repo(self, match: re.Match[str]) -> HubRepo | None:
            repo = hub.repos.get(match["repo"])
            if repo is None or match["rev"] not in ("main", repo.commit):
                self._error(404, "RepoNotFound" if repo is None else "RevisionNotFound")
                return None
            return repo

        def _json(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _file(self, repo: HubRepo, data: bytes, head: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", repo.commit)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _error(self, status: int, code: str) -> None:
            data = json.dumps({"error": code}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _entry(name: str, data: bytes) -> dict[str, Any]:
    """A tree entry: git's blob id of the content, its size and path."""
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return {"type": "file", "oid": blob, "size": len(data), "path": name}


@contextmanager
def serve_hub(*repos: HubRepo) -> Iterator[LocalHub]:
    """Serve ``repos`` on 127.0.0.1 (a free port) for the duration of the block."""
    hub = LocalHub("", {repo.repo_id: repo for repo in repos})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def repo_from_folder(repo_id: str, commit: str, folder: Path) -> HubRepo:
    """A repository holding every file of ``folder``."""
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    return HubRepo(repo_id, commit, files)
