"""[authentication.jwt]: tokens of an identity provider, verified against its keys (JWKS) served
by a test server, with keys made in the test: RS256, ES256 and EdDSA pass; expired, not yet
valid, wrong issuer or audience, `alg: none`, HS256 signed with the public key and a tampered
payload are 401 with WWW-Authenticate; an unknown kid fetches the keys again (a rotation), the
last keys stay while the provider is down; a models claim limits the models."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support import TinyServer, eventually, http

ISSUER = "https://id.example.test/realms/dev"
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


class Keys:
    """Signing keys made here, and the JWKS a provider would publish for them."""

    def __init__(self) -> None:
        self.private = {
            "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "ed": ed25519.Ed25519PrivateKey.generate(),
            "rotated": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        }
        self.published = ["rsa", "ec", "ed"]

    def jwks(self) -> dict:
        out = []
        for kid in self.published:
            public = self.private[kid].public_key()
            algo = jwt.algorithms.OKPAlgorithm if kid == "ed" else jwt.algorithms.ECAlgorithm if kid == "ec" else jwt.algorithms.RSAAlgorithm
            out.append({**json.loads(algo.to_jwk(public)), "kid": kid, "use": "sig"})
        return {"keys": out}

    def token(self, kid: str = "rsa", alg: str | None = None, **claims) -> str:
        alg = alg or {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA", "rotated": "RS256"}[kid]
        now = int(time.time())
        payload = {"iss": ISSUER, "sub": "alice", "aud": "devstral", "iat": now, "exp": now + 600, **claims}
        return jwt.encode({k: v for k, v in payload.items() if v is not None}, self.private[kid], algorithm=alg, headers={"kid": kid})


class Provider:
    """The identity provider's JWKS endpoint (it can go down)."""

    def __init__(self, keys: Keys) -> None:
        self.keys, self.up, self.fetches = keys, True, 0
        self.server = TinyServer(self._respond)
        self.url = f"http://127.0.0.1:{self.server.port}/protocol/openid-connect/certs"

    def _respond(self, method: str, body: bytes) -> tuple[int, str, bytes]:
        self.fetches += 1
        if not self.up:
            return 503, "text/plain", b"down"
        return 200, "application/json", json.dumps(self.keys.jwks()).encode()


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture
def provider(keys):
    p = Provider(keys)
    yield p
    p.server.stop()
    keys.published = ["rsa", "ec", "ed"]


def guarded(sim, start_proxy, provider, **jwt_extra):
    cfg = {"issuer": ISSUER, "audiences": ["devstral"], "jwks_url": provider.url, "jwks_min_interval": 0.0, **jwt_extra}
    return start_proxy(sim.url, authentication={"api_keys": ["sk-static"], "jwt": cfg})


def call(p, token: str, body=CHAT, route="/v1/chat/completions"):
    return http("POST", p.url + route, body, {"authorization": f"Bearer {token}"})


@pytest.mark.parametrize("kid", ["rsa", "ec", "ed"])
def test_tokens_of_the_provider_pass_beside_static_keys(sim, start_proxy, provider, keys, kid):
    p = guarded(sim, start_proxy, provider)
    assert call(p, keys.token(kid)).status == 200
    assert call(p, "sk-static").status == 200
    assert "authorization" not in {k.lower() for k in sim.record.headers[-1]}


def forged_none(keys: Keys) -> str:
    import base64

    def part(doc) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return part({"alg": "none", "typ": "JWT", "kid": "rsa"}) + "." + part({"iss": ISSUER, "sub": "mallory", "aud": "devstral", "exp": now + 600}) + "."


def hs256_with_the_public_key(keys: Keys) -> str:
    pem = keys.private["rsa"].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": "rsa", "typ": "JWT"}
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    claims = {"iss": ISSUER, "sub": "mallory", "aud": "devstral", "exp": int(time.time()) + 600}
    signing = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(claims).encode())
    return (signing + b"." + b64(hmac.new(pem, signing, hashlib.sha256).digest())).decode()


def tampered(keys: Keys) -> str:
    import base64

    head, payload, sig = keys.token().split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda k: k.token(exp=int(time.time()) - 3600), "expired"),
        (lambda k: k.token(nbf=int(time.time()) + 3600), "not yet valid"),
        (lambda k: k.token(iss="https://evil.example"), "wrong issuer"),
        (lambda k: k.token(aud="someone-else"), "wrong audience"),
        (lambda k: k.token(exp=None), "missing claim 'exp'"),
        (forged_none, "algorithm 'none' not accepted"),
        (hs256_with_the_public_key, "algorithm 'HS256' not accepted"),
        (tampered, "bad signature or malformed token"),
    ],
)
def test_a_token_that_does_not_pass_is_401_saying_why_in_the_routes_shape(sim, start_proxy, provider, keys, make, why, capfd):
    p = guarded(sim, start_proxy, provider)
    token = make(keys)
    r = call(p, token)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_token" and why in r.json()["error"]["message"]
    assert r.headers["www-authenticate"] == f'Bearer error="invalid_token", error_description="{why.replace(chr(34), chr(39))}"'
    anthropic = call(p, token, {"model": "gpt-4", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, "/v1/messages")
    assert anthropic.status == 401 and anthropic.json()["type"] == "error"
    assert token not in capfd.readouterr().err  # nothing of the token in the logs
    assert not sim.record.requests


def test_an_unknown_kid_fetches_the_keys_again_and_a_provider_down_keeps_the_last_ones(sim, start_proxy, provider, keys):
    p = guarded(sim, start_proxy, provider)
    rotated = keys.token("rotated")
    assert call(p, rotated).status == 401  # not published yet
    keys.published = ["rsa", "rotated"]  # the provider rotates
    eventually(lambda: call(p, rotated).status == 200, what="the rotated key fetched")
    provider.up = False
    before = provider.fetches
    assert call(p, keys.token("ec")).status == 401  # unpublished now: a fetch, which fails
    eventually(lambda: provider.fetches > before, what="a fetch while the provider is down")
    assert call(p, keys.token("rsa")).status == 200 and call(p, rotated).status == 200  # the last keys stay


def test_unknown_kids_in_a_flood_fetch_at_most_once_an_interval(sim, start_proxy, provider, keys):
    p = guarded(sim, start_proxy, provider, jwks_min_interval=3600.0)
    before = provider.fetches
    for _ in range(20):
        assert call(p, keys.token("rotated")).status == 401
    assert provider.fetches == before  # the start's fetch was within the interval: none more


def test_a_models_claim_limits_the_models(sim, start_proxy, provider, keys):
    p = guarded(sim, start_proxy, provider, models_claim="models")
    token = keys.token(models=["gpt-4"])
    assert call(p, token).status == 200
    r = call(p, token, {**CHAT, "model": "gpt-4-secret"})
    assert r.status == 403 and r.json()["error"]["code"] == "model_not_allowed"
    assert call(p, keys.token(models="gpt-4 gpt-3.5-turbo"), {**CHAT, "model": "gpt-3.5-turbo"}).status == 200  # scopes, space-separated


def test_a_jwt_section_needs_its_keys_and_asymmetric_algorithms(tmp_path):
    from devstral_proxy.config import ConfigError, build

    base = {"backends": {"a": {"url": "http://127.0.0.1:9"}}}
    with pytest.raises(ConfigError, match="jwks_url or jwks_file"):
        build({**base, "authentication": {"jwt": {"issuer": ISSUER}}}, env={})
    with pytest.raises(ConfigError, match="asymmetric"):
        build({**base, "authentication": {"jwt": {"issuer": ISSUER, "jwks_url": "http://x", "algorithms": ["HS256"]}}}, env={})


def test_a_tier_claim_picks_the_rate_limits(sim, start_proxy, provider, keys):
    cfg = {"issuer": ISSUER, "audiences": ["devstral"], "jwks_url": provider.url, "tier_claim": "tier"}
    limits = {"requests_per_minute": 1, "tiers": {"gold": {"requests_per_minute": 4}, "free": {}}}
    p = start_proxy(sim.url, authentication={"jwt": cfg}, rate_limit=limits)
    plain, gold, free = keys.token(sub="bob"), keys.token(sub="carol", tier="gold"), keys.token(sub="dave", tier="free")
    assert [call(p, plain).status for _ in range(2)] == [200, 429]
    assert [call(p, gold).status for _ in range(5)] == [200] * 4 + [429]
    assert [call(p, free).status for _ in range(6)] == [200] * 6  # a tier with no limits: none


def test_a_tier_claim_picks_the_queue_class(start_proxy, provider, keys):
    from concurrent.futures import ThreadPoolExecutor

    from bench.simulator import Behavior
    from tests.support import SimThread

    slow = SimThread(Behavior(token_delay=0.01, reply=" ".join(["w"] * 20), slots=100))
    try:
        cfg = {"issuer": ISSUER, "audiences": ["devstral"], "jwks_url": provider.url, "tier_claim": "tier"}
        p = start_proxy(backends={"vllm": {"url": slow.url, "max_in_flight": 1}}, queue={"clients": {"gold": {"priority": 1}}}, authentication={"jwt": cfg})
        plain, gold = keys.token(sub="bob"), keys.token(sub="carol", tier="gold")
        body = {"model": "mistral-sim", "messages": [{"role": "user", "content": "hi"}]}

        def queued() -> float:
            text = http("GET", p.url + "/metrics", headers={"authorization": f"Bearer {plain}"}).body.decode()
            return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith("devstral_queue_length"))

        with ThreadPoolExecutor(8) as pool:
            burst = [pool.submit(call, p, plain, {**body, "user": f"b{k}"}) for k in range(6)]
            eventually(lambda: queued() == 5, interval=0.005)
            vip = pool.submit(call, p, gold, {**body, "user": "gold"})
            assert all(f.result().status == 200 for f in [*burst, vip])
        order = [r.get("user") for r in slow.record.requests]
        assert order.index("gold") == 1  # its class is served first: right after the one running
    finally:
        slow.stop()
