"""Attacks on ``thoughtgraph serve``, performed for real: a separate server process holding a canary
``OPENAI_API_KEY``, a listener standing where an attacker would want the key sent, the official ``openai``
client and raw sockets. Each attack must fail with a clear 4xx and leave the server serving."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import openai
import pytest

from tests.security.serving import CANARY_KEY, Listener, canary_server
from tests.thoughtgraph.test_server import serving
from thoughtgraph.backends.scripted import ScriptedBackend

pytestmark = pytest.mark.integration  # real `thoughtgraph serve` processes

QUESTION = [{"role": "user", "content": "What is 6 times 7?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with canary_server(tmp_path_factory.mktemp("serve"), "--header-timeout", "1") as url:
        yield url


def post(url: str, body: object, **kwargs) -> httpx.Response:
    return httpx.post(url + "/chat/completions", json=body, timeout=30, **kwargs)


def test_a_request_cannot_send_the_servers_key_to_a_url_it_names(server):
    listener = Listener()
    client = openai.OpenAI(base_url=server, api_key="client-key", max_retries=0)
    attacks = {
        "planner": f"openai:{listener.url}/v1#stolen",
        "strategies_file": f"{listener.url}/strategies.yaml",
        "answer_pattern": "(a+)+$",
    }
    try:
        for field, value in attacks.items():
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="rsim", messages=QUESTION, extra_body={field: value})
            error = refused.value.body
            assert error["param"] == field and error["code"] == "server_setting"
            assert f"`{field}` is server configuration" in error["message"]
            assert CANARY_KEY not in str(error)
        assert listener.requests == [] and not listener.saw(CANARY_KEY)
        # the refusal does not depend on the method either
        refused = post(server, {"model": "cot", "messages": QUESTION, "answer_pattern": "x"})
        assert refused.status_code == 400 and CANARY_KEY not in refused.text
    finally:
        listener.close()


@pytest.mark.parametrize("field,prefix", [("planner", "scripted:"), ("strategies_file", "")])
def test_paths_tell_a_client_nothing_about_the_servers_files(server, tmp_path, field, prefix):
    secret = tmp_path / "secret.yaml"
    secret.write_text("rules: []\ndefault: TOP-SECRET-CONTENT\n")
    replies = [post(server, {"model": "rsim", "messages": QUESTION, field: prefix + path})
               for path in (str(secret), "/etc/passwd", "/no/such/file")]  # fmt: skip
    assert {r.status_code for r in replies} == {400}
    assert replies[0].content == replies[1].content == replies[2].content  # the same answer, whatever the path
    assert b"TOP-SECRET" not in replies[0].content and b"root:" not in replies[1].content


def test_sizes_over_the_servers_limits_are_refused_before_any_work(server):
    cases = [
        ({"model": "sc", "samples": 200_000}, "samples", "at most 16"),
        ({"model": "cot", "max_tokens": 10**9}, "max_tokens", "at most 4,096"),
        ({"model": "bot", "temperatures": [0.5] * 10_000}, "temperatures", "at most 256 entries"),
        ({"model": "tot", "max_depth": 10**6}, "max_depth", "at most 256"),
        ({"model": "gg", "paths": 10_000, "candidates": 10_000}, "paths", "at most 16"),
        ({"model": "cot", "seed": 10**30}, "seed", "64-bit"),
        ({"model": "cot", "stop": ["x" * 10_000]}, "stop", "at most 256 characters"),
        ({"model": "gg", "final_answer_cue": "x" * 500_000}, "final_answer_cue", "at most 1,000 characters"),
        ({"model": "rsim", "start_steps": ["ok", "y" * 5_000]}, "start_steps", "at most 1,000 characters"),
        ({"model": "gg", "step_boundary": ""}, "step_boundary", "must not be empty"),
    ]
    for extra, param, limit in cases:
        started = time.monotonic()
        reply = post(server, {"messages": QUESTION, **extra})
        assert reply.status_code == 400, (extra, reply.text)
        assert reply.json()["error"]["param"] == param and limit in reply.json()["error"]["message"], reply.text
        assert time.monotonic() - started < 5
    huge_problem = [{"role": "user", "content": "6 times 7? " * 20_000}]
    assert post(server, {"model": "cot", "messages": huge_problem}).status_code == 413
    assert post(server, {"model": "cot", "messages": QUESTION}).json()["choices"][0]["message"]["content"] == "42"


def test_deeply_nested_and_oversized_json_is_a_400_not_a_500(server):
    nested_user: object = "x"
    for _ in range(40):
        nested_user = [nested_user]
    bodies = [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        json.dumps({"model": "cot", "messages": QUESTION, "user": nested_user}).encode(),
        b'{"model": "cot", "seed": ' + b"9" * 5000 + b"}",
    ]
    for body in bodies:
        reply = httpx.post(server + "/chat/completions", content=body, timeout=30,
                           headers={"content-type": "application/json"})  # fmt: skip
        assert reply.status_code == 400, reply.text[:300]
        assert "nests deeper" in reply.text or "not JSON" in reply.text


def test_a_chunked_body_is_cut_off_at_the_limit_not_read_whole(server):
    host, port = server.removeprefix("http://").removesuffix("/v1").split(":")
    chunk = b"x" * (256 * 1024)
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        try:
            while sent < 64 * len(chunk):  # 16 MB offered against a 1 MiB limit
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                if select.select([connection], [], [], 0)[0]:
                    break  # the server has answered
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = b""
        try:
            while len(response) < 4096 and (data := connection.recv(4096)):
                response += data
        except (ConnectionResetError, TimeoutError):
            pass
    assert sent < 8 * 1024 * 1024, f"the server read {sent:,} bytes of a body over its 1 MiB limit"
    assert response == b"" or response.startswith(b"HTTP/1.1 413"), response[:200]


def test_half_open_connections_are_closed_and_do_not_starve_clients(server):
    host, port = server.removeprefix("http://").removesuffix("/v1").split(":")
    held = []
    for index in range(300):
        connection = socket.create_connection((host, int(port)), timeout=10)
        if index % 2:
            connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # half a request head
        held.append(connection)
    reply = post(server, {"model": "cot", "messages": QUESTION})
    assert reply.status_code == 200
    time.sleep(3)  # the server gives each connection 1 s (--header-timeout 1) to finish a request head
    closed = 0
    for connection in held:
        readable, _, _ = select.select([connection], [], [], 1)
        try:
            closed += bool(readable) and connection.recv(1) == b""
        except ConnectionResetError:
            closed += 1
        connection.close()
    assert closed == 300


def test_traces_are_not_listed_and_a_trace_page_locks_down_scripts(server):
    listing = httpx.get(server + "/traces", timeout=10)
    assert listing.status_code == 404 and "listing traces is off" in listing.text
    reply = post(server, {"model": "sc", "samples": 2, "messages": QUESTION}).json()
    page = httpx.get(server + f"/traces/{reply['thoughtgraph']['trace_id']}", params={"format": "html"}, timeout=10)
    assert page.status_code == 200 and page.headers["x-content-type-options"] == "nosniff"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert httpx.get(server + "/models", timeout=10).headers["x-content-type-options"] == "nosniff"


def test_runs_beyond_the_concurrency_limit_get_a_429_and_the_slots_come_back():
    backend = ScriptedBackend(default="The answer is 42.", latency_seconds=1.0)
    with serving(backend, max_concurrent_runs=2) as url, httpx.Client(timeout=30) as client:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            body = {"model": "cot", "messages": QUESTION}
            first = [pool.submit(client.post, url + "/chat/completions", json=body) for _ in range(2)]
            time.sleep(0.3)
            busy = client.post(url + "/chat/completions", json=body)
            assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
            assert [f.result().status_code for f in first] == [200, 200]
        assert client.post(url + "/chat/completions", json=body).status_code == 200
        stream = {**body, "stream": True}
        with client.stream("POST", url + "/chat/completions", json=stream) as response:
            assert response.status_code == 200 and "[DONE]" in "".join(response.iter_text())
        assert [client.post(url + "/chat/completions", json=body).status_code for _ in range(3)] == [200] * 3
