"""What checking an identity provider's token costs a request: a signature check each time
(the verified-token memory off) against the memory of tokens verified until their `exp`.

`python -m bench.token_cost [--calls N]`: µs a call, median of 5 runs, for RS256, ES256 and
EdDSA tokens made with keys made here.
"""

import argparse
import json
import statistics
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from devstral_proxy.config import JwtConfig
from devstral_proxy.tokens import JwtAuth

ISSUER = "https://id.example.test"


def _setup() -> tuple[JwtAuth, dict[str, str]]:
    private = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
    to_jwk = {"RS256": jwt.algorithms.RSAAlgorithm, "ES256": jwt.algorithms.ECAlgorithm, "EdDSA": jwt.algorithms.OKPAlgorithm}
    keys = [{**json.loads(to_jwk[alg].to_jwk(k.public_key())), "kid": alg} for alg, k in private.items()]
    auth = JwtAuth(JwtConfig(issuer=ISSUER, jwks_file="unused"))
    auth.load({"keys": keys})
    now = int(time.time())
    tokens = {alg: jwt.encode({"iss": ISSUER, "sub": "alice", "exp": now + 3600}, k, algorithm=alg, headers={"kid": alg}) for alg, k in private.items()}
    return auth, tokens


def _us(fn, calls: int) -> float:
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    auth, tokens = _setup()
    for alg, token in tokens.items():
        raw = token.encode()

        def fresh(raw: bytes = raw) -> None:
            auth.remembered.clear()
            auth.verify(raw)

        assert not isinstance(auth.verify(raw), Exception)
        print(f"{alg}: verified each time {_us(fresh, args.calls):.1f} us | remembered until exp {_us(lambda raw=raw: auth.verify(raw), args.calls):.2f} us")


if __name__ == "__main__":
    main()
