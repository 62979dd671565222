"""Image URLs a request would have the backend fetch: the policy refuses file: and this
host's network by default (a 400 in the caller's shape), whichever protocol carried them."""

import pytest

from devstral_translate.images import image_urls, refused
from tests.support import http

PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    ("url", "policy", "ok"),
    [
        (PNG, "public", True),
        ("https://upload.wikimedia.org/cat.png", "public", True),
        ("http://example.com/cat.png", "public", True),
        ("http://example.com/cat.png", "https", False),
        ("file:///etc/passwd", "public", False),
        ("FILE:///etc/passwd", "https", False),
        ("http://169.254.169.254/latest/meta-data/", "public", False),  # cloud metadata: link-local
        ("http://127.0.0.1:8000/health", "public", False),
        ("http://[::1]/x.png", "public", False),
        ("http://10.1.2.3/x.png", "public", False),
        ("http://192.168.0.7/x.png", "public", False),
        ("http://user@localhost:9000/x.png", "public", False),
        ("http://metadata.google.internal/x", "public", False),
        ("http://intranet/x.png", "public", False),  # a bare name: this network's
        ("gopher://example.com/x", "public", False),
        ("file:///etc/passwd", "all", True),
    ],
)
def test_the_policy(url, policy, ok):
    assert (refused(url, policy) is None) is ok, refused(url, policy)


def test_a_domain_allow_list_is_strict():
    domains = ("images.example.com",)
    assert refused("https://images.example.com/a.png", "public", domains) is None
    assert refused("https://cdn.images.example.com/a.png", "public", domains) is None
    assert refused("https://example.com/a.png", "public", domains) is not None
    assert refused("https://images.example.com.evil.net/a.png", "public", domains) is not None
    assert refused(PNG, "public", domains) is None


def test_image_urls_of_a_chat_request():
    body = (
        b'{"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"file:///x"}},'
        b'{"type":"image_url","image_url":"https://a.example/b.png"}]},{"role":"assistant","content":"ok"}]}'
    )
    assert image_urls(body) == ["file:///x", "https://a.example/b.png"]
    assert image_urls(b'{"messages":[{"role":"user","content":"no images"}]}') == []


def _image_chat(url: str) -> dict:
    content = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": url}}]
    return {"model": "gpt-4", "messages": [{"role": "user", "content": content}]}


def test_every_route_refuses_a_private_image_url_before_the_backend(sim, start_proxy):
    p = start_proxy(sim.url)
    before = len(sim.record.requests)
    chat = http("POST", p.url + "/v1/chat/completions", _image_chat("http://169.254.169.254/latest/meta-data/"))
    assert chat.status == 400 and chat.json()["error"]["code"] == "image_url_refused"
    resp = http(
        "POST",
        p.url + "/v1/responses",
        {"model": "gpt-4", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "file:///etc/passwd"}]}]},
    )
    assert resp.status == 400 and resp.json()["error"]["code"] == "image_url_refused"
    msg = http(
        "POST",
        p.url + "/v1/messages",
        {
            "model": "gpt-4",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "http://127.0.0.1/x.png"}}]}],
        },
    )
    assert msg.status == 400 and msg.json()["type"] == "error" and "Image URL refused" in msg.json()["error"]["message"]
    assert len(sim.record.requests) == before  # none reached the backend
    assert http("POST", p.url + "/v1/chat/completions", _image_chat(PNG)).status == 200  # inline images go


def test_the_policy_is_configurable(sim, start_proxy):
    p = start_proxy(sim.url, images={"url_policy": "all"})
    assert http("POST", p.url + "/v1/chat/completions", _image_chat("http://127.0.0.1/x.png")).status == 200
