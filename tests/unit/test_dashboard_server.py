"""The dashboard under a real uvicorn server (in this process, on 127.0.0.1, a free port): request bodies
are bounded (413 before they are read, with or without Content-Length) and no Delta read runs on the
event loop (requests stuck in lake reads do not stall the others)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import quote, urlencode

import pytest
import uvicorn

from jobs.serving.dashboard import bind
from lib.dashboard import create_app
from lib.dashboard.app import create_unsubscribe_app, openapi_document
from lib.dashboard.limits import MAX_BODY_BYTES, MAX_TOKEN_LENGTH
from lib.dashboard.tables import LakeReader
from lib.retarget.message import offer_code
from tests.dashboard_data import GoldSales
from tests.helpers import wait_for
from tests.unit.test_dashboard_api import NOW, fill_sales

pytestmark = pytest.mark.timeout(120)


@contextmanager
def serve(app) -> Iterator[tuple[str, int]]:
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)  # the server's life
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "uvicorn did not start"
        return server.started

    wait_for(started, 10, 0.02, what="uvicorn to start")
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def raw_request(address: tuple[str, int], head: str, body_parts: list[bytes], timeout: float = 5.0) -> tuple[int, bytes, float]:
    """Send ``head`` and the body parts on a raw socket, then read the answer: (status, body, seconds)."""
    started = time.monotonic()
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in body_parts:
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):  # the server answered and closed: read it
                break
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1], time.monotonic() - started


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def seen():
    return []


@pytest.fixture(params=["dashboard", "unsubscribe"])
def address(request, tmp_path, seen):
    def handler(token: str) -> bool:
        seen.append(token)
        return token == "good"

    app = (create_app(str(tmp_path), unsubscribe_handler=handler) if request.param == "dashboard"
           else create_unsubscribe_app(handler, lake_root=str(tmp_path)))
    with serve(app) as addr:
        yield addr


def test_oversize_body_with_content_length_is_refused_without_reading_it(address, seen):
    head = ("POST /unsubscribe HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\n"
            "Content-Length: 50000000\n")
    status, body, seconds = raw_request(address, head, [b"token=good&" + b"x" * 1000])
    # answered at once, from the header alone: the 50 MB never sent are not waited for
    assert status == 413 and "too large" in json.loads(body)["detail"] and seconds < 3
    assert seen == []


def test_oversize_chunked_body_is_refused_as_it_arrives(address, seen):
    head = "POST /unsubscribe HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\nTransfer-Encoding: chunked\n"
    parts = [chunked(b"token=good&")] + [chunked(b"x" * 4096)] * 5  # 20 KiB, and the body never ends
    status, body, seconds = raw_request(address, head, parts)
    assert status == 413 and "too large" in json.loads(body)["detail"] and seconds < 3
    assert seen == []


def test_bodies_within_the_limit_pass_whole_chunked_or_not(address, seen):
    one_click = b"List-Unsubscribe=One-Click"
    head = (f"POST /unsubscribe?token=good HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\n"
            f"Content-Length: {len(one_click)}\nConnection: close\n")
    assert raw_request(address, head, [one_click])[0] == 200
    form = b"token=good&pad=" + b"p" * (MAX_BODY_BYTES - 15)  # exactly the limit, in 3 chunks
    assert len(form) == MAX_BODY_BYTES
    parts = [chunked(p) for p in (form[:5000], form[5000:10000], form[10000:])] + [b"0\r\n\r\n"]
    head = ("POST /unsubscribe HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\n"
            "Transfer-Encoding: chunked\nConnection: close\n")
    assert raw_request(address, head, parts)[0] == 200
    assert seen == ["good", "good"]


def test_overlong_tokens_never_reach_the_token_check(address, seen):
    token = "t" * (MAX_TOKEN_LENGTH + 1)
    for head in (f"GET /unsubscribe?token={token} HTTP/1.1\nHost: x\nConnection: close\n",
                 f"POST /unsubscribe?token={token} HTTP/1.1\nHost: x\nContent-Length: 0\nConnection: close\n"):
        status, body, _ = raw_request(address, head, [])
        assert status == 400 and b"Link not valid" in body
    assert seen == []


def test_a_failing_unsubscribe_store_is_a_503_page_not_a_500(tmp_path):
    def broken(_token: str) -> bool:
        raise OSError("bucket unreachable")

    with serve(create_app(str(tmp_path), unsubscribe_handler=broken)) as addr:
        status, body, _ = raw_request(addr, "POST /unsubscribe?token=x HTTP/1.1\nHost: x\nContent-Length: 0\nConnection: close\n", [])
    assert status == 503 and b"try again" in body and b"bucket" not in body


def _requests_for_every_operation(doc: dict, code: str) -> list[tuple[str, str, bytes]]:
    """(method, url, body) for every operation of the document, with valid parameters."""
    values = {"product_id": "101", "code": code, "query": "run", "token": "good"}
    out = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            url = path
            query = {}
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    url = url.replace("{" + p["name"] + "}", quote(values[p["name"]]))
                elif p.get("required") or p["name"] == "token":
                    query[p["name"]] = values[p["name"]]
            if query:
                url += "?" + urlencode(query)
            out.append((method.upper(), url, b"List-Unsubscribe=One-Click" if method == "post" else b""))
    return out


def test_lake_reads_run_off_the_event_loop(tmp_path, monkeypatch):
    """Every operation at once while every lake read (and the unsubscribe store) is held: the requests that
    read wait in the threadpool, and the event loop still answers others at once. A route doing Delta I/O
    inside an ``async def`` would hold the loop, and the probes below would time out."""
    lake = tmp_path / "lake"
    fill_sales(GoldSales(lake)).flush(NOW)
    release = threading.Event()
    held: list[str] = []
    lock = threading.Lock()
    original = LakeReader._entry  # every read starts there, before it takes the table's lock

    def hold(name: str) -> None:
        with lock:
            held.append(name)
        release.wait(30)

    def slow_entry(self, ref):
        if not getattr(_local, "held", False):  # hold each request once, at its first read
            _local.held = True
            hold(str(ref))
        return original(self, ref)

    _local = threading.local()

    def slow_handler(token: str) -> bool:
        hold("unsubscribe")
        return token == "good"

    monkeypatch.setattr(LakeReader, "_entry", slow_entry)
    app = create_app(str(lake), clock=lambda: NOW, unsubscribe_handler=slow_handler)
    requests = _requests_for_every_operation(openapi_document(app), offer_code(b"k", "s"))
    assert len(requests) >= 16
    results: dict[str, int] = {}

    def call(method: str, url: str, body: bytes) -> None:
        conn = http.client.HTTPConnection(*addr, timeout=40)
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, url, body=body or None, headers=headers)
        results[f"{method} {url}"] = conn.getresponse().status
        conn.close()

    with serve(app) as addr, ThreadPoolExecutor(max_workers=len(requests)) as pool:
        calls = [pool.submit(call, *r) for r in requests]  # every operation at once
        readers = [r for r in requests if r[1].startswith("/api/")] + [r for r in requests if r[0] == "POST"]
        wait_for(lambda: len(held) >= len(readers), 20, 0.05, what="every reading request held in its read")
        assert len(held) == len(readers), (held, readers)  # all of them stuck in a read at the same time
        for probe in ("/openapi.json", "/", "/unsubscribe?token=x"):
            started = time.monotonic()
            conn = http.client.HTTPConnection(*addr, timeout=5)
            conn.request("GET", probe)
            assert conn.getresponse().status == 200
            conn.close()
            assert time.monotonic() - started < 1.0, probe
        release.set()
        for c in calls:
            c.result(timeout=30)
    assert len(results) == len(requests) and all(s < 500 for s in results.values()), results


def test_no_async_code_of_the_dashboard_touches_the_lake():
    """The static side of the test above, for code no request reaches in it: in ``lib/dashboard`` an
    ``async def`` (routes, middleware, exception handlers) never uses the lake reader, deltalake or
    pyarrow, and calls the unsubscribe handler only through ``run_in_threadpool``."""
    import ast
    from pathlib import Path

    import lib.dashboard

    blocking = {"reader", "get_reader", "LakeReader", "deltalake", "DeltaTable", "write_deltalake", "pa", "pc", "pads",
                "read", "read_latest", "memo", "dataset", "info", "version", "add_actions", "RetargetStore"}
    found = []
    for path in sorted(Path(lib.dashboard.__file__).parent.rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.AsyncFunctionDef):
                continue
            names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | \
                    {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute)}
            found += [f"{path.name}:{fn.name} uses {sorted(names & blocking)}"] if names & blocking else []
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                if isinstance(call.func, ast.Name) and call.func.id == "unsubscribe_handler":
                    found.append(f"{path.name}:{fn.name} calls the unsubscribe handler on the event loop")
    assert found == []
