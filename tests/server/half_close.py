#!/usr/bin/python3
"""Half-closed and reset clients against a running `seekserve serve` (plain sockets).

An HTTP/1.1 client may shut down its sending side once its request is out and still read the
reply: the server must answer it in full. A client that resets its connection is gone: its
request is cancelled and its KV blocks freed (seen in /metrics). A client that closes its socket
entirely (FIN, no reset) is found gone at the server's next write.
Usage: half_close.py URL API_KEY MODEL
"""
import json
import socket
import struct
import sys
import time
import urllib.parse
import urllib.request

URL, KEY, MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
HOST, PORT = urllib.parse.urlparse(URL).hostname, urllib.parse.urlparse(URL).port


def request_bytes(body):
    data = json.dumps(body).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n")
    return head.encode() + data


def read_all(sock):
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def parse_reply(raw):
    """Status and body of one HTTP/1.1 reply (chunked or with a length)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2:]
    else:
        body = rest[:int(headers.get("content-length", len(rest)))]
    return status, body.decode()


def metrics():
    text = urllib.request.urlopen(f"{URL}/metrics", timeout=30).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_for(predicate, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = metrics()
        if predicate(m):
            return m
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {what}")


def idle(m):
    return (m["seekserve_num_requests_running"] == 0 and m["seekserve_num_requests_waiting"] == 0
            and m["seekserve_kv_cache_usage_ratio"] == 0)


def completion(body, half_close_after=None):
    """Sends one request; shuts down the sending side right after it (half_close_after == 0) or
    after that many bytes of reply arrived; returns (status, body)."""
    s = socket.create_connection((HOST, PORT), timeout=120)
    s.sendall(request_bytes(body))
    raw = b""
    if half_close_after == 0:
        s.shutdown(socket.SHUT_WR)
    elif half_close_after is not None:
        while len(raw) < half_close_after:
            chunk = s.recv(65536)
            assert chunk, "the server closed before the client half-closed"
            raw += chunk
        s.shutdown(socket.SHUT_WR)
    raw += read_all(s)
    s.close()
    return parse_reply(raw)


def stream_text(body):
    text, usage, done = "", None, False
    for event in body.split("\n\n"):
        if not event.startswith("data: "):
            continue
        data = event[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        chunk = json.loads(data)
        assert "error" not in chunk, chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for c in chunk.get("choices", []):
            text += c.get("text", "")
    assert done, "the stream did not end with [DONE]"
    return text, usage


N = 24
LONG = 480  # fits the tiny model's 512-token context with the prompt
base = {"model": MODEL, "prompt": "half closed", "max_tokens": N, "temperature": 0,
        "ignore_eos": True}

# The reference: the same request from a client that keeps its connection open.
status, body = completion(base)
assert status == 200, (status, body)
want = json.loads(body)["choices"][0]["text"]

# Half-closed right after the request: the full reply still comes.
status, body = completion(base, half_close_after=0)
assert status == 200, (status, body)
reply = json.loads(body)
assert reply["choices"][0]["text"] == want, (reply, want)
assert reply["usage"]["completion_tokens"] == N, reply
print("half_close: non-streaming reply after an immediate half-close: ok")

# Streaming, half-closed right away, and half-closed after the first bytes of the stream.
stream = dict(base, stream=True, stream_options={"include_usage": True})
for after in (0, 1):
    status, body = completion(stream, half_close_after=after)
    assert status == 200, (status, body)
    text, usage = stream_text(body)
    assert text == want, (after, text, want)
    assert usage and usage["completion_tokens"] == N, usage
print("half_close: streaming reply after a half-close (before and during the stream): ok")

# Gone: a reset (SO_LINGER 0) and a full close, each while its request runs.
wait_for(idle, "idle before the disconnect checks")
for how in ("reset", "close"):
    before = metrics()
    long_request = dict(base, max_tokens=LONG, prompt=f"never read ({how})")
    s = socket.create_connection((HOST, PORT), timeout=120)
    s.sendall(request_bytes(long_request))
    try:
        wait_for(lambda m: m["seekserve_num_requests_running"] >= 1, f"the request runs ({how})",
                 timeout=60)
    except AssertionError:
        s.settimeout(1)
        print("reply so far:", s.recv(65536), file=sys.stderr)
        raise
    if how == "reset":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:  # read what came, if anything: a close with unread data would be a reset
        s.setblocking(False)
        try:
            while s.recv(65536):
                pass
        except BlockingIOError:
            pass
    s.close()
    after = wait_for(idle, f"the {how} connection's sequence is freed")
    generated = (after["seekserve_generation_tokens_total"] -
                 before["seekserve_generation_tokens_total"])
    assert generated < LONG, f"generation went on after the {how} ({generated} tokens)"
    print(f"half_close: a {how} connection is cancelled and its blocks freed "
          f"({int(generated)} of {LONG} tokens generated): ok")
