"""A Hugging Face Hub on 127.0.0.1 for the tests: what the unmodified ``huggingface_hub`` client calls, in memory.

Repos are stored as commits (sha → the whole file tree), refs point at commits (``main``, ``refs/pr/N``), so a test
can assert on history. Every request is recorded with its headers (to check where a token travels). Files are
always "regular" (the preupload answer), so the client sends their bytes base64 in the NDJSON commit and never
needs LFS or Xet storage. Not implemented: LFS/Xet uploads, branches and tags other than main, discussions.

Routes (``{t}`` is models / datasets / spaces; ``{repo}`` is ``namespace/name``; ``{rev}`` a ref, a sha or a
sha prefix, URL-quoted or not):

- ``POST /api/repos/create`` — create a repo (409 with its url when it exists: ``exist_ok`` relies on that)
- ``GET /api/{t}/{repo}``, ``GET /api/{t}/{repo}/revision/{rev}`` — repo info: ``sha``, ``siblings``, ``sdk``
- ``GET /api/{t}/{repo}/refs``, ``GET /api/{t}/{repo}/commits/{rev}`` — refs (PRs included), history
- ``POST /api/{t}/{repo}/preupload/{rev}`` — upload mode "regular" and the remote blob oid per file
- ``POST /api/{t}/{repo}/commit/{rev}`` — NDJSON commit; ``parentCommit`` not the head → 412; ``create_pr=1``;
  a read-only token (``LoopbackHub.read_only``) → 403
- ``POST /api/validate-yaml`` — the README front matter must be a YAML mapping
- ``GET /api/{t}/{repo}/tree/{rev}[/{path}]``, ``POST /api/{t}/{repo}/paths-info/{rev}`` — listings (``expand``:
  each path's ``lastCommit``, the commit that last changed it)
- ``HEAD|GET /[{t}/]{repo}/resolve/{rev}/{path}`` — downloads with ETag, X-Repo-Commit, Content-Length, ranges
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, bytes]
    title: str
    message: str = ""
    date: str = field(default_factory=lambda: datetime.now(UTC).isoformat().replace("+00:00", "Z"))


@dataclass
class Repo:
    type: str
    id: str
    sdk: str | None = None
    private: bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    """``main`` and ``refs/pr/N`` → commit sha."""

    def add_commit(self, parent: str | None, files: dict[str, bytes], title: str, message: str = "") -> Commit:
        commit = Commit(sha=hashlib.sha1(uuid.uuid4().bytes).hexdigest(), parent=parent, files=files, title=title,
                        message=message)
        self.commits[commit.sha] = commit
        return commit

    def resolve(self, rev: str) -> Commit | None:
        if rev in self.refs:
            return self.commits[self.refs[rev]]
        if rev in self.commits:
            return self.commits[rev]
        matches = [sha for sha in self.commits if len(rev) >= 7 and sha.startswith(rev)]
        return self.commits[matches[0]] if len(matches) == 1 else None

    def history(self, ref: str = "main") -> list[Commit]:
        """Commits reachable from ``ref``, newest first."""
        out, sha = [], self.refs.get(ref)
        while sha is not None:
            out.append(self.commits[sha])
            sha = self.commits[sha].parent
        return out

    @property
    def main(self) -> Commit:
        return self.commits[self.refs["main"]]

    @property
    def pull_requests(self) -> list[str]:
        return sorted((r for r in self.refs if r.startswith("refs/pr/")), key=lambda r: int(r.rsplit("/", 1)[1]))


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.extra, self.headers = extra or {}, headers or {}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


class HubState:
    """The Hub's memory, shared by the handler threads (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[Recorded] = []
        self.base_url = ""
        self.faults: list[tuple[str, str, int]] = []
        """(method, path substring, status): each answers one matching request with that status, in order."""
        self.errors: list[str] = []
        """Tracebacks of requests this test Hub failed to handle (answered 500)."""
        self.before_commit: Callable[[], None] | None = None
        """Called once (then cleared) when a commit request arrives, before the commit is checked."""
        self.read_only_tokens: set[str] = set()
        """Tokens that may read but not write: a commit (a pull request included) with one is answered 403."""

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            found = self.repos.get((repo_type, repo_id))
        if found is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return found

    def fail(self, method: str, path_contains: str, status: int, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([(method, path_contains, status)] * times)

    def take_fault(self, method: str, path: str) -> int | None:
        with self.lock:
            for i, (m, part, status) in enumerate(self.faults):
                if m == method and part in path:
                    del self.faults[i]
                    return status
        return None

    def url(self, repo: Repo, *parts: str) -> str:
        return "/".join([f"{self.base_url}/{PREFIX[repo.type]}{repo.id}", *parts])


def _commit_at(repo: Repo, rev: str) -> Commit:
    commit = repo.resolve(rev)
    if commit is None:
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
    return commit


def _entries(files: dict[str, bytes], base: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = base.rstrip("/") + "/" if base else ""
    if base and base not in files and not any(p.startswith(prefix) for p in files):
        raise HubError(404, f"{base} does not exist", "EntryNotFound")
    folders: dict[str, None] = {}
    out = []
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix):].split("/")
        for depth in range(1, len(parts)):
            if recursive or depth == 1:
                folders[prefix + "/".join(parts[:depth])] = None
        if recursive or len(parts) == 1:
            out.append(_file_entry(path, files[path]))
    out += [{"type": "directory", "path": f, "oid": git_blob_sha(f.encode())} for f in folders]
    return sorted(out, key=lambda e: str(e["path"]))


def _file_entry(path: str, data: bytes) -> dict[str, Any]:
    return {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data)}


def _info(repo: Repo, rev: str | None) -> Reply:
    commit = _commit_at(repo, rev or "main")
    card: Any = None
    readme = commit.files.get("README.md", b"").decode("utf-8", "replace")
    if readme.startswith("---"):
        try:
            card = yaml.safe_load(readme.split("---", 2)[1])
        except yaml.YAMLError:
            card = None
    payload = {
        "_id": repo.id, "id": repo.id, "author": repo.id.split("/")[0], "sha": commit.sha, "private": repo.private,
        "gated": False, "disabled": False, "lastModified": commit.date, "tags": [], "downloads": 0, "likes": 0,
        "cardData": card if isinstance(card, dict) else None,
        "siblings": [{"rfilename": p, "size": len(d), "blobId": git_blob_sha(d)} for p, d in sorted(commit.files.items())],
    }
    if repo.type == "space":
        payload["sdk"] = repo.sdk
    return Reply.json(payload)


def _create(state: HubState, body: dict[str, Any]) -> Reply:
    repo_type = body.get("type") or "model"
    name, org = body.get("name"), body.get("organization")
    if not name or repo_type not in PREFIX:
        raise HubError(400, "name and a valid type are required")
    if repo_type == "space" and not body.get("sdk"):
        raise HubError(400, "sdk is required for a space")
    repo_id = f"{org}/{name}" if org else f"user/{name}"
    with state.lock:
        existing = state.repos.get((repo_type, repo_id))
        if existing is not None:
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": state.url(existing)})
        repo = Repo(repo_type, repo_id, sdk=body.get("sdk"), private=body.get("visibility") == "private")
        repo.refs["main"] = repo.add_commit(None, {".gitattributes": GITATTRIBUTES}, "initial commit").sha
        state.repos[(repo_type, repo_id)] = repo
    return Reply.json({"url": state.url(repo), "name": repo_id, "id": repo_id})


def _preupload(repo: Repo, rev: str, body: dict[str, Any]) -> Reply:
    files = _commit_at(repo, rev).files
    return Reply.json({"files": [
        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
         "oid": git_blob_sha(files[f["path"]]) if f["path"] in files else None}
        for f in body.get("files", [])
    ]})


def _parse_ndjson(raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise HubError(400, f"invalid NDJSON: {exc}") from exc
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "the first NDJSON line must be the header")
    return lines[0]["value"], lines[1:]


def _apply(files: dict[str, bytes], ops: list[dict[str, Any]]) -> dict[str, bytes]:
    out = dict(files)
    for op in ops:
        key, value = op.get("key"), op.get("value", {})
        path = value.get("path", "")
        if key == "file":
            if value.get("encoding") != "base64":
                raise HubError(400, f"unsupported encoding for {path}")
            out[path] = base64.b64decode(value["content"])
        elif key == "deletedFile":
            if path not in out:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del out[path]
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            gone = [p for p in out if p.startswith(prefix)]
            if not gone:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in gone:
                del out[p]
        else:
            raise HubError(400, f"operation {key!r} is not supported by this test Hub (files are never LFS here)")
    return out


def _commit(state: HubState, repo: Repo, rev: str, raw: bytes, create_pr: bool) -> Reply:
    hook, state.before_commit = state.before_commit, None
    if hook is not None:
        hook()  # outside the lock: the hook may commit through the HTTP API itself
    header, ops = _parse_ndjson(raw)
    with state.lock:
        if rev != "main" and not rev.startswith("refs/pr/"):
            raise HubError(400, f"this test Hub commits to main or refs/pr/N, not {rev!r}")
        base = _commit_at(repo, rev)
        parent = header.get("parentCommit")
        if parent and not create_pr and not base.sha.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        commit = repo.add_commit(base.sha, _apply(base.files, ops), header.get("summary", ""),
                                 header.get("description", ""))
        payload: dict[str, Any] = {"success": True, "commitOid": commit.sha,
                                   "commitUrl": state.url(repo, "commit", commit.sha), "hookOutput": ""}
        if create_pr:
            number = len(repo.pull_requests) + 1
            repo.refs[f"refs/pr/{number}"] = commit.sha
            payload["pullRequestUrl"] = state.url(repo, "discussions", str(number))
        else:
            repo.refs[rev] = commit.sha
    return Reply.json(payload)


def _validate_yaml(body: dict[str, Any]) -> Reply:
    content = str(body.get("content", ""))
    if not content.startswith("---"):
        return Reply.json({"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
    try:
        meta = yaml.safe_load(content.split("---", 2)[1])
    except (yaml.YAMLError, IndexError) as exc:
        return Reply.json({"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}, status=400)
    if meta is not None and not isinstance(meta, dict):
        return Reply.json({"errors": [{"message": "metadata must be a YAML mapping"}], "warnings": []}, status=400)
    return Reply.json({"errors": [], "warnings": []})


def _resolve(state: HubState, repo: Repo, rev: str, path: str, head: bool, range_header: str | None) -> Reply:
    commit = _commit_at(repo, rev)
    if path not in commit.files:
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": commit.sha})
    data = commit.files[path]
    headers = {"ETag": f'"{git_blob_sha(data)}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream", "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"'}
    status, body = 200, data
    if range_header and range_header.startswith("bytes="):
        start_s, _, end_s = range_header[6:].partition("-")
        start = int(start_s) if start_s else max(len(data) - int(end_s), 0)
        end = min(int(end_s), len(data) - 1) if start_s and end_s else len(data) - 1
        if start >= len(data) and len(data) > 0:
            raise HubError(416, "range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
        status, body = 206, data[start:end + 1]
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    headers["Content-Length"] = str(len(body))
    return Reply(status, b"" if head else body, headers)


def _refs(repo: Repo) -> Reply:
    return Reply.json({
        "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo.refs["main"]}],
        "converts": [], "tags": [],
        "pullRequests": [{"name": r, "ref": r, "targetCommit": repo.refs[r]} for r in repo.pull_requests],
    })


def _commits(repo: Repo, rev: str) -> Reply:
    out, commit = [], _commit_at(repo, rev)
    while True:
        out.append({"id": commit.sha, "authors": [{"user": "tester"}], "date": commit.date, "title": commit.title,
                    "message": commit.message})
        if commit.parent is None:
            return Reply.json(out)
        commit = repo.commits[commit.parent]


def _last_commit(repo: Repo, head: Commit, path: str) -> dict[str, str]:
    """The commit that last changed ``path`` as of ``head`` (walking back while its content stays the same)."""
    commit = head
    while commit.parent is not None and repo.commits[commit.parent].files.get(path) == head.files.get(path):
        commit = repo.commits[commit.parent]
    return {"id": commit.sha, "title": commit.title, "date": commit.date}


def _split_rev(parts: list[str]) -> tuple[str, list[str]]:
    """The revision at the head of ``parts`` (``refs/pr/N`` may arrive quoted as one segment, or as three)."""
    if parts and parts[0] == "refs" and len(parts) >= 3:
        return "/".join(parts[:3]), parts[3:]
    return (parts[0], parts[1:]) if parts else ("main", [])


def route(state: HubState, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
    split = urlsplit(raw_path)
    query = {k: v[-1] for k, v in parse_qs(split.query).items()}
    parts = [unquote(p) for p in split.path.strip("/").split("/")]
    if parts[:1] == ["api"]:
        return _api(state, method, parts[1:], query, headers, body)
    if len(parts) >= 4 and parts[0] in ("datasets", "spaces") and parts[3] == "resolve":
        repo, rest = state.repo(TYPES[parts[0]], "/".join(parts[1:3])), parts[4:]
    elif len(parts) >= 3 and parts[2] == "resolve":
        repo, rest = state.repo("model", "/".join(parts[0:2])), parts[3:]
    else:
        raise HubError(404, f"no route for {method} {split.path}")
    rev, path = _split_rev(rest)
    return _resolve(state, repo, rev, "/".join(path), method == "HEAD", headers.get("range"))


def _api(state: HubState, method: str, parts: list[str], query: dict[str, str], headers: dict[str, str],
         body: bytes) -> Reply:
    if method == "POST" and parts == ["repos", "create"]:
        return _create(state, json.loads(body or b"{}"))
    if method == "POST" and parts == ["validate-yaml"]:
        return _validate_yaml(json.loads(body or b"{}"))
    if len(parts) < 3 or parts[0] not in TYPES:
        raise HubError(404, f"no route for {method} /api/{'/'.join(parts)}")
    repo = state.repo(TYPES[parts[0]], "/".join(parts[1:3]))
    action, rest = (parts[3], parts[4:]) if len(parts) > 3 else ("", [])
    rev, tail = _split_rev(rest)
    if method == "GET" and action == "":
        return _info(repo, None)
    if method == "GET" and action == "revision":
        return _info(repo, rev)
    if method == "GET" and action == "refs":
        return _refs(repo)
    if method == "GET" and action == "commits":
        return _commits(repo, rev)
    if method == "GET" and action == "tree":
        files = _commit_at(repo, rev).files
        return Reply.json(_entries(files, "/".join(tail), query.get("recursive", "").lower() in ("1", "true")))
    if method == "POST" and action == "paths-info":
        head = _commit_at(repo, rev)
        form = parse_qs(body.decode())
        wanted = form.get("paths", [])
        listing = {e["path"]: e for e in _entries(head.files, "", recursive=True)}
        found = [listing[p] for p in wanted if p in listing]
        if form.get("expand", [""])[0].lower() == "true":
            found = [{**e, "lastCommit": _last_commit(repo, head, e["path"])} for e in found]
        return Reply.json(found)
    if method == "POST" and action == "preupload":
        return _preupload(repo, rev, json.loads(body or b"{}"))
    if method == "POST" and action == "commit":
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if bearer in state.read_only_tokens:
            raise HubError(403, "You don't have the rights to create a commit or a pull request on this repo: "
                                "your token is read-only", "Forbidden")
        return _commit(state, repo, rev, body, query.get("create_pr") == "1")
    raise HubError(404, f"no route for {method} /api/{'/'.join(parts)}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``state.requests`` instead."""

    def _serve(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with state.lock:
            state.requests.append(record)
        fault = state.take_fault(self.command, self.path)
        try:
            if fault is not None:
                raise HubError(fault, f"injected {fault}")
            reply = route(state, self.command, self.path, record.headers, body)
        except HubError as exc:
            payload = {"error": exc.message, **exc.extra}
            reply = Reply.json(payload, status=exc.status)
            reply.headers.update(exc.headers)
            if exc.code:
                reply.headers["X-Error-Code"] = exc.code
            reply.headers["X-Error-Message"] = exc.message
        except Exception:  # a bug in this test Hub: answer 500 and keep the traceback for the test to show
            with state.lock:
                state.errors.append(traceback.format_exc())
            reply = Reply.json({"error": "loopback hub crashed (see LoopbackHub.errors)"}, status=500)
        record.status = reply.status
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if "Content-Length" not in reply.headers:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: HubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class LoopbackHub:
    """The test Hub in a thread: ``with LoopbackHub() as hub: HfApi(endpoint=hub.url)``."""

    def __init__(self) -> None:
        self.state = HubState()
        self._server = _Server(self.state)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.state.base_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)

    def start(self) -> LoopbackHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests read and steer -----------------------------------------------------------------------------

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.state.repo(repo_type, repo_id)

    def has_repo(self, repo_id: str, repo_type: str = "dataset") -> bool:
        return (repo_type, repo_id) in self.state.repos

    @property
    def errors(self) -> list[str]:
        return list(self.state.errors)

    @property
    def requests(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.requests)

    def read_only(self, token: str) -> None:
        """Make ``token`` a read-only token: its commits and pull requests are refused (403)."""
        self.state.read_only_tokens.add(token)

    def fail(self, method: str, path_contains: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path_contains`` with ``status``."""
        self.state.fail(method, path_contains, status, times)

    @contextmanager
    def before_next_commit(self, hook: Callable[[], None]) -> Iterator[None]:
        """Run ``hook`` when the next commit request arrives, before it is checked (to land a rival commit)."""
        self.state.before_commit = hook
        try:
            yield
        finally:
            self.state.before_commit = None


def serve_online(monkeypatch: Any) -> Iterator[LoopbackHub]:
    """Body of a pytest fixture: a started hub, with ``huggingface_hub``'s offline switch (on in the tests) off."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with LoopbackHub() as hub:
        yield hub
        assert hub.errors == [], hub.errors[0]


def subprocess_env(hub: LoopbackHub, home: Any) -> dict[str, str]:
    """Environment for a child process that reaches ``hub`` (HF_ENDPOINT is read when the libraries import)."""
    import os

    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
            "HF_HOME": str(home), "HF_TOKEN": "", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1"}


def free_port_url() -> str:
    """A loopback URL where nothing listens (connections are refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
