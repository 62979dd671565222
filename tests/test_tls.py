"""TLS both ways, with certificates made in the test (trustme): https:// backends verified
(a CA file, a client certificate, verification off only when asked), HTTPS on the listening
side reloaded on SIGHUP without dropping connections; and backend URLs as users write them."""

import json
import ssl
from http.client import HTTPSConnection

import pytest
import trustme

from tests.support import SimThread, http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def server_context(ca, client_ca=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(ctx)
    return ctx


def files(tmp_path, ca, name="server"):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    (tmp_path / f"{name}.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
    return str(tmp_path / f"{name}.pem"), str(tmp_path / f"{name}.key")


def test_an_https_backend_is_verified_with_its_ca(tmp_path, ca, start_proxy, caplog):
    sim = SimThread(ssl_context=server_context(ca))
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        p = start_proxy(backends={"tls": {"url": sim.url, "ca_file": str(tmp_path / "ca.pem")}})
        for _ in range(3):  # pooled and kept alive like a plain one
            r = http("POST", p.url + "/v1/chat/completions", CHAT)
            assert r.status == 200 and r.json()["model"] == "gpt-4"
        unverified = start_proxy(backends={"tls": {"url": sim.url}})  # the system's CAs do not know it
        r = http("POST", unverified.url + "/v1/chat/completions", CHAT)
        assert r.status == 502 and r.json()["error"]["code"] == "backend_unreachable"
        said = f"backend tls: cannot connect to {sim.url}: its certificate is not trusted"
        assert any(said in m and "set backends.tls.ca_file" in m for m in caplog.messages), caplog.messages  # what to do, in the log
        trusting = start_proxy(backends={"tls": {"url": sim.url, "tls_verify": False}})
        assert http("POST", trusting.url + "/v1/chat/completions", CHAT).status == 200
    finally:
        sim.stop()


def test_a_client_certificate_for_a_backend_that_asks_for_one(tmp_path, ca, start_proxy):
    client_ca = trustme.CA()
    sim = SimThread(ssl_context=server_context(ca, client_ca))
    try:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        cert, key = files(tmp_path, client_ca, "client")
        p = start_proxy(backends={"tls": {"url": sim.url, "ca_file": str(tmp_path / "ca.pem"), "client_cert": cert, "client_key": key}})
        assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200
        without = start_proxy(backends={"tls": {"url": sim.url, "ca_file": str(tmp_path / "ca.pem")}})
        assert http("POST", without.url + "/v1/chat/completions", CHAT).status == 502
    finally:
        sim.stop()


def https_request(port: int, ca, conn=None):
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    conn = conn or HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(CHAT), headers={"content-type": "application/json"})
    r = conn.getresponse()
    return conn, r.status, r.read()


def test_https_on_the_listening_side_and_a_renewed_certificate(tmp_path, ca, sim, start_proxy):
    cert, key = files(tmp_path, ca)
    p = start_proxy(sim.url, server={"tls_cert": cert, "tls_key": key})
    conn, status, body = https_request(p.port, ca)
    assert status == 200 and json.loads(body)["model"] == "gpt-4"
    first_serial = conn.sock.getpeercert()["serialNumber"]
    files(tmp_path, ca)  # a renewed certificate in the same files, then SIGHUP's reload
    p.loop.call(lambda: p.proxy.reload(p.config))
    _, status, _ = https_request(p.port, ca, conn)  # the open connection goes on
    assert status == 200
    fresh, status, _ = https_request(p.port, ca)
    assert status == 200 and fresh.sock.getpeercert()["serialNumber"] != first_serial


def test_a_reload_with_a_certificate_that_does_not_load_changes_nothing(tmp_path, ca, sim, start_proxy):
    """A key that does not match the certificate: the reload is refused whole, naming the
    files; the old certificate keeps serving new handshakes and the new mapping is not applied."""
    from devstral_proxy.config import ConfigError, build

    cert, key = files(tmp_path, ca)
    p = start_proxy(sim.url, server={"tls_cert": cert, "tls_key": key})
    conn, status, _ = https_request(p.port, ca)
    serial = conn.sock.getpeercert()["serialNumber"]
    _, other_key = files(tmp_path, ca, "other")
    sections = {"server": {"tls_cert": cert, "tls_key": other_key}, "model_mapping": {"gpt-4": "other-model"}}
    new = build(sections, env={}, overrides={"upstream": sim.url, "host": "127.0.0.1", "port": 0})
    with pytest.raises(ConfigError, match="other.key"):
        p.loop.call(lambda: p.proxy.reload(new))
    fresh, status, body = https_request(p.port, ca)
    assert status == 200 and fresh.sock.getpeercert()["serialNumber"] == serial
    assert sim.record.requests[-1]["model"] == "mistral-sim"  # the old mapping still applies


def test_a_silent_tls_handshake_is_closed_after_header_timeout(tmp_path, ca, sim, start_proxy):
    """A connection that never starts its handshake is closed after header_timeout, as a
    request that never sends its head is (not asyncio's 60 s)."""
    import socket
    import time

    cert, key = files(tmp_path, ca)
    p = start_proxy(sim.url, server={"tls_cert": cert, "tls_key": key, "header_timeout": 0.5})
    s = socket.create_connection(("127.0.0.1", p.port))
    s.settimeout(30)
    start = time.monotonic()
    assert s.recv(1) == b""  # closed by the proxy
    assert time.monotonic() - start < 15  # header_timeout (0.5 s) and a busy machine's margin, not 60 s
    s.close()


def test_plain_http_to_the_https_port_is_a_400_saying_so(tmp_path, ca, sim, start_proxy):
    """As nginx: a request in plain HTTP on the TLS port is answered, not dropped; TLS clients
    on the same port are unaffected."""
    from tests.support import raw_exchange

    cert, key = files(tmp_path, ca)
    p = start_proxy(sim.url, server={"tls_cert": cert, "tls_key": key})
    reply = raw_exchange(p.port, b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["error"]["code"] == "plain_http_to_https_port"
    _, status, _ = https_request(p.port, ca)
    assert status == 200


def test_handshakes_under_way_count_against_max_connections(tmp_path, ca, sim, start_proxy):
    """#25: 3,000 silent TLS connections were held with max_connections = 100 and not counted.
    A connection counts from accept; one whose handshake fails is let go without the collector."""
    import gc
    import socket

    from tests.support import eventually

    cert, key = files(tmp_path, ca)
    p = start_proxy(sim.url, server={"tls_cert": cert, "tls_key": key, "max_connections": 5})
    gc.disable()
    try:
        silent = [socket.create_connection(("127.0.0.1", p.port)) for _ in range(8)]
        eventually(lambda: len(p.proxy.handshaking) == 8, what="eight handshakes under way")
        _, status, body = https_request(p.port, ca)
        assert status == 503 and json.loads(body)["error"]["code"] == "too_many_connections"
        for s in silent:
            s.close()
        eventually(lambda: not p.proxy.handshaking, what="the failed handshakes let go")
        _, status, _ = https_request(p.port, ca)
        assert status == 200
    finally:
        gc.enable()


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_backend_urls_as_users_write_them(sim, start_proxy, suffix):
    p = start_proxy(sim.url + suffix)
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200
    health = http("GET", p.url + "/health")  # the monitor's first check, made before serving
    assert health.status == 200 and sim.record.health_checks >= 1  # it reached /health, not /v1/health
