"""A loopback fake Hugging Face Hub for tests (standard library only).

`FakeHub` is a `ThreadingHTTPServer` on 127.0.0.1 (port 0, daemon thread) that speaks just enough of the Hub's HTTP
API for the real clients (datasets 5.2 / huggingface_hub 2.4, with Xet disabled) to push with
`Dataset(Dict).push_to_hub`, `DatasetCard.push_to_hub`, `HfApi.create_commit` / `upload_file`, and to read back with
`load_dataset`, `hf_hub_download`, `DatasetCard.load` and `HfFileSystem`.

* Repos live in memory: `hub.repos["tester/demo"]` is a `FakeRepo`; `.files` maps the paths at the head of `main` to
  their bytes, `.text(path)` decodes one, `.commits` is the history (a full snapshot per commit, so any commit sha
  can be read), `.sha` is the head. A new repo starts with an "initial commit" holding `.gitattributes`, as on the Hub.
* Every upload goes through the LFS protocol: preupload answers `uploadMode: "lfs"` (answering "regular" breaks
  `datasets`, which deletes its temporary parquet file right after preupload), then the LFS batch endpoint points to
  `PUT /lfs-put/{sha256}`. Preupload also returns the sha256 of an existing identical file, so, as on the Hub,
  unchanged files are dropped from a commit and a commit with no change is skipped by the client.
* Any token is accepted, but whoami and writes (create, preupload, LFS batch, commit) without one answer 401; writes
  outside the namespaces `hub.user` ("tester") and `hub.orgs` answer 403. `hub.seed(repo_id, files)` creates a repo
  in any namespace (e.g. someone else's). Reads need no token; `private` is recorded but not enforced.
* `hub.requests_log` lists `LoggedRequest(method, path, query, authorization, status)`; `hub.unhandled` lists the
  requests that matched no route (answered 404).
* Failures: `fail_next(n, status=500, predicate=None)`, `fail_paths(predicate, status=500)` (`status=None` drops the
  connection without an answer), `clear_failures()`, and `refuse_connections()` for an unreachable Hub.

Use it through the `fake_hub` fixture in conftest.py, which also points the client libraries at `hub.url`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
_KINDS = {"datasets": "dataset", "models": "model", "spaces": "space"}
_API = re.compile(r"^/api/(datasets|models|spaces)/([^/]+/[^/]+?)(?:/([a-z-]+)/([^/]+)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")


class HubError(Exception):
    """Answered as `status` with `{"error": message, **extra}` and the `X-Error-Code` header the client maps."""

    def __init__(self, status: int, code: str | None, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class Commit:
    sha: str
    title: str
    description: str
    author: str
    date: str
    files: dict[str, tuple[bytes, bool]]  # path -> (content, stored through LFS)


@dataclass
class FakeRepo:
    repo_id: str
    repo_type: str = "dataset"
    private: bool = False
    commits: list[Commit] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1].sha

    @property
    def files(self) -> dict[str, bytes]:
        return {path: data for path, (data, _) in self.commits[-1].files.items()}

    def text(self, path: str) -> str:
        return self.files[path].decode()

    @property
    def url(self) -> str:
        return ("" if self.repo_type == "model" else self.repo_type + "s/") + self.repo_id

    def snapshot(self, revision: str) -> Commit:
        if revision in ("main", "HEAD"):
            return self.commits[-1]
        for commit in reversed(self.commits):
            if len(revision) >= 7 and commit.sha.startswith(revision):
                return commit
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def commit(self, title: str, files: dict, description: str = "", author: str = "") -> Commit:
        digest = hashlib.sha1(f"{self.sha if self.commits else ''}\n{title}\n{len(self.commits)}".encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path][0]).digest())
        date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        author = author or self.repo_id.split("/")[0]
        self.commits.append(Commit(digest.hexdigest(), title, description, author, date, files))
        return self.commits[-1]


@dataclass
class LoggedRequest:
    method: str
    path: str  # URL-decoded, without the query string
    query: str
    authorization: str | None  # e.g. "Bearer hf_fake_token_123"
    status: int | None = None  # None if the connection was dropped


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, user: str = "tester", orgs: tuple[str, ...] = ()):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.user, self.orgs = user, list(orgs)
        self.repos: dict[str, FakeRepo] = {}
        self.blobs: dict[str, bytes] = {}  # LFS storage, sha256 -> content
        self.requests_log: list[LoggedRequest] = []
        self.unhandled: list[str] = []
        self.lock = threading.RLock()
        self._failures: list[list] = []  # [predicate(method, path), status, remaining count or None]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def fail_next(self, n: int = 1, status: int | None = 500, predicate=None) -> None:
        """Fail the next `n` requests (those where `predicate(method, path)` is true, if given) with `status`.

        `/api/agent-harnesses` (fetched once per process by huggingface_hub) never consumes a failure. Remember that
        huggingface_hub retries 408/429/5xx answers and dropped connections 5 times on preupload, LFS batch/PUT, tree
        listing and ranged reads (with waits the fixture skips), but not on repo_info, create_repo or the commit POST."""
        with self.lock:
            self._failures.append([predicate or (lambda method, path: True), status, n])

    def fail_paths(self, predicate, status: int | None = 500) -> None:
        """Fail every request where `predicate(method, path)` is true, until `clear_failures()`."""
        with self.lock:
            self._failures.append([predicate, status, None])

    def clear_failures(self) -> None:
        with self.lock:
            self._failures.clear()

    def refuse_connections(self) -> None:
        """Stop listening: every later request fails with a connection error (`httpx2.ConnectError`)."""
        self.stop()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def seed(self, repo_id: str, files: dict[str, bytes | str], repo_type: str = "dataset") -> FakeRepo:
        """Create (or add a commit to) a repo in any namespace, e.g. someone else's, bypassing the permissions."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, FakeRepo(repo_id, repo_type))
            contents = {p: (d.encode() if isinstance(d, str) else d, True) for p, d in files.items()}
            for data, _ in contents.values():
                self.blobs[hashlib.sha256(data).hexdigest()] = data
            base = repo.commits[-1].files if repo.commits else {".gitattributes": (GITATTRIBUTES, False)}
            repo.commit("seed", {**base, **contents})
            return repo

    def _take_failure(self, method: str, path: str) -> tuple[bool, int | None]:
        with self.lock:
            for rule in self._failures:
                predicate, status, remaining = rule
                if path != "/api/agent-harnesses" and predicate(method, path):
                    if remaining is not None:
                        rule[2] -= 1
                        if rule[2] <= 0:
                            self._failures.remove(rule)
                    return True, status
        return False, None

    def _repo(self, kind: str | None, repo_id: str) -> FakeRepo:
        repo = self.repos.get(repo_id)
        if repo is None or repo.repo_type != _KINDS[kind or "models"]:
            raise HubError(404, "RepoNotFound", f"Repository Not Found for url: {self.url}/{repo_id}")
        return repo

    @staticmethod
    def _entry(snapshot: Commit, path: str) -> dict:
        if path in snapshot.files:
            data, lfs = snapshot.files[path]
            out = {"type": "file", "oid": _git_oid(data), "size": len(data), "path": path}
            if lfs:
                out["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        else:
            out = {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
        return {**out, "lastCommit": {"id": snapshot.sha, "title": snapshot.title, "date": snapshot.date}}

    def _tree(self, snapshot: Commit, path: str, recursive: bool) -> list[dict]:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries: set[str] = set()
        for file in snapshot.files:
            if file.startswith(prefix):
                parts = file[len(prefix) :].split("/")
                entries.update(
                    prefix + "/".join(parts[:depth]) for depth in range(1, len(parts) + 1 if recursive else 2)
                )
        if prefix and not entries:  # a missing folder must be a 404, not [] (push_to_hub relies on it)
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {snapshot.sha}")
        return [self._entry(snapshot, p) for p in sorted(entries)]

    def _commit(self, repo: FakeRepo, revision: str, lines: list[dict]) -> Commit:
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        if revision not in ("main", repo.sha):
            raise HubError(404, "RevisionNotFound", f"The fake Hub only commits to main, not to {revision}")
        if header.get("parentCommit") not in (None, repo.sha):
            raise HubError(412, None, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.commits[-1].files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = (base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                if value["oid"] not in self.blobs:
                    raise HubError(422, None, f"LFS object {value['oid']} was never uploaded")
                files[value["path"]] = (self.blobs[value["oid"]], True)
            elif key == "deletedFile" and files.pop(value["path"], None) is None:
                raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
            elif key == "deletedFolder":
                files = {p: f for p, f in files.items() if not p.startswith(value["path"].strip("/") + "/")}
        return repo.commit(header.get("summary", ""), files, header.get("description", ""), self.user)


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        hub = self.server
        split = urlsplit(self.path)
        path, self.query = unquote(split.path), parse_qs(split.query)
        self.entry = LoggedRequest(self.command, path, split.query, self.headers.get("Authorization"))
        with hub.lock:
            hub.requests_log.append(self.entry)
        self.body = self._read_body()
        failed, status = hub._take_failure(self.command, path)
        if failed and status is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif failed:
            self._send(status, {"error": f"fake Hub: injected failure {status}"})
        else:
            try:
                with hub.lock:
                    self._route(hub, path)
            except HubError as err:
                headers = {"X-Error-Message": err.message, **({"X-Error-Code": err.code} if err.code else {})}
                self._send(err.status, {"error": err.message, **err.extra}, headers=headers)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", ""):
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _send(self, status: int, payload=None, body: bytes | None = None, headers: dict | None = None) -> None:
        if body is None:
            body = json.dumps(payload if payload is not None else {}).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.entry.status = status
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _check_write(self, hub: FakeHub, repo_id: str | None = None) -> None:
        """Any token is accepted, but writes need one, in a namespace of `hub.user` / `hub.orgs`."""
        if not self.headers.get("Authorization", "").removeprefix("Bearer ").strip():
            raise HubError(401, None, "Invalid credentials in Authorization header")
        if repo_id is not None and repo_id.split("/")[0] not in {hub.user, *hub.orgs}:
            raise HubError(403, None, f"You don't have the rights to write to {repo_id}")

    def _route(self, hub: FakeHub, path: str) -> None:
        method, body = self.command, self.body
        if method == "GET" and path == "/api/whoami-v2":
            self._check_write(hub)
            orgs = [{"name": org, "type": "org", "roleInOrg": "write"} for org in hub.orgs]
            auth = {"type": "access_token", "accessToken": {"displayName": "fake", "role": "write"}}
            return self._send(200, {"type": "user", "name": hub.user, "orgs": orgs, "auth": auth})
        if method == "GET" and path == "/api/agent-harnesses":
            return self._send(200, {"standardEnvVars": [], "harnesses": {}})
        if method == "POST" and path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(hub, json.loads(body or b"{}"))
        if method == "PUT" and path.startswith("/lfs-put/"):
            if hashlib.sha256(body).hexdigest() != path.rsplit("/", 1)[1]:
                raise HubError(400, None, "LFS upload does not match its sha256")
            hub.blobs[path.rsplit("/", 1)[1]] = body
            return self._send(200, {})
        if method == "POST" and (match := _LFS_BATCH.match(path)):
            hub._repo(match[1], match[2])
            self._check_write(hub, match[2])
            objects = [
                obj
                if obj["oid"] in hub.blobs
                else {**obj, "actions": {"upload": {"href": f"{hub.url}/lfs-put/{obj['oid']}"}}}
                for obj in json.loads(body)["objects"]
            ]
            return self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})
        if method in ("GET", "HEAD") and (match := _RESOLVE.match(path)):
            return self._resolve(hub._repo(match[1], match[2]).snapshot(match[3]), match[4])
        if match := _API.match(path):
            return self._repo_api(hub, method, *match.groups())
        hub.unhandled.append(f"{method} {self.path}")
        raise HubError(404, None, f"fake Hub: no route for {method} {path}")

    def _create_repo(self, hub: FakeHub, spec: dict) -> None:
        kind = spec.get("type") or "model"
        repo = FakeRepo(
            f"{spec.get('organization') or hub.user}/{spec['name']}", kind, spec.get("visibility") == "private"
        )
        if repo.repo_id in hub.repos:  # the client turns this 409 into success when exist_ok=True
            raise HubError(409, None, f"You already created this {kind} repo", url=f"{hub.url}/{repo.url}")
        self._check_write(hub, repo.repo_id)
        hub.repos[repo.repo_id] = repo
        repo.commit("initial commit", {".gitattributes": (GITATTRIBUTES, False)}, author=hub.user)
        self._send(200, {"url": f"{hub.url}/{repo.url}", "name": repo.repo_id})

    def _resolve(self, snapshot: Commit, path: str) -> None:
        if path not in snapshot.files:
            raise HubError(404, "EntryNotFound", f"Entry not found: {path}")
        data, _ = snapshot.files[path]
        headers = {"ETag": f'"{_git_oid(data)}"', "X-Repo-Commit": snapshot.sha, "Accept-Ranges": "bytes"}
        if not (rng := re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))):
            return self._send(200, body=data, headers=headers)
        start, end = int(rng[1] or 0), min(int(rng[2]) if rng[2] else len(data) - 1, len(data) - 1)
        if start >= len(data):
            return self._send(416, body=b"", headers={"Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(206, body=data[start : end + 1], headers=headers)

    def _repo_api(self, hub: FakeHub, method: str, kind: str, repo_id: str, action, revision, rest) -> None:
        repo = hub._repo(kind, repo_id)
        if action in ("preupload", "commit"):
            self._check_write(hub, repo_id)
        if method == "GET" and action in (None, "revision"):
            snapshot = repo.snapshot(revision or "main")
            siblings = [{"rfilename": p, "size": len(d)} for p, (d, _) in sorted(snapshot.files.items())]
            info = {"id": repo_id, "author": repo_id.split("/")[0], "sha": snapshot.sha, "private": repo.private}
            return self._send(200, {**info, "lastModified": snapshot.date, "siblings": siblings, "gated": False})
        if method == "GET" and action == "tree":
            recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._send(200, hub._tree(repo.snapshot(revision), rest or "", recursive))
        if method == "GET" and action == "commits":
            history = repo.commits[: repo.commits.index(repo.snapshot(revision)) + 1]
            return self._send(200, [{"id": c.sha, "title": c.title, "message": c.description, "date": c.date,
                                     "authors": [{"user": c.author}]} for c in reversed(history)])  # fmt: skip
        if method == "POST" and action == "paths-info":
            snapshot = repo.snapshot(revision)
            paths = parse_qs(self.body.decode()).get("paths", [])
            found = [p for p in paths if p in snapshot.files or any(f.startswith(p + "/") for f in snapshot.files)]
            return self._send(200, [hub._entry(snapshot, p) for p in found])
        if method == "POST" and action == "preupload":
            head = repo.snapshot(revision).files
            answers = [
                {"path": f["path"], "uploadMode": "lfs", "shouldIgnore": False,
                 "oid": hashlib.sha256(head[f["path"]][0]).hexdigest() if f["path"] in head else None}
                for f in json.loads(self.body)["files"]
            ]  # fmt: skip
            return self._send(200, {"files": answers, "commitOid": repo.sha})
        if method == "POST" and action == "commit":
            commit = hub._commit(repo, revision, [json.loads(line) for line in self.body.splitlines() if line.strip()])
            url = f"{hub.url}/{repo.url}/commit/{commit.sha}"
            return self._send(
                200, {"success": True, "commitOid": commit.sha, "commitUrl": url, "pullRequestUrl": None}
            )
        hub.unhandled.append(f"{method} {self.path}")
        raise HubError(404, None, f"fake Hub: no route for {method} {self.path}")
