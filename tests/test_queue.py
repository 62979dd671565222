"""When the GPUs are full: per-backend max_in_flight, the admission queue (deadlines, bounds,
fairness between keys, priorities, no head-of-line blocking across backends, clients leaving
while queued), routing on the engines' own load from vLLM's /metrics, failover on an engine's
503, and cancellation on every path with devstral_orphaned_generations_total at 0."""

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.simulator import Behavior
from tests.support import SimThread, eventually, http

CHAT = {"model": "mistral-sim", "messages": [{"role": "user", "content": "hi"}]}


def post(proxy, key: str | None = None, body=CHAT, session: str | None = None):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if session:
        headers["x-session-id"] = session
    return http("POST", proxy.url + "/v1/chat/completions", body, headers, timeout=30)


def metric(proxy, line_start: str) -> float:
    text = http("GET", proxy.url + "/metrics", headers={"authorization": "Bearer sk-a"}).body.decode()
    found = [line for line in text.splitlines() if line.startswith(line_start)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in found)


def wait_until(cond, timeout=30.0):
    eventually(cond, timeout, interval=0.005)


@pytest.fixture
def slow_sim():
    s = SimThread(Behavior(token_delay=0.01, reply=" ".join(["w"] * 20), slots=100))
    yield s
    s.stop()


def in_order(sim) -> list[str]:
    """The `user` field of each request, in the order the backend got them."""
    return [r.get("user") for r in sim.record.requests]


def test_max_in_flight_caps_what_the_backend_sees(slow_sim, start_proxy):
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 2}})
    with ThreadPoolExecutor(8) as pool:
        statuses = [r.status for r in pool.map(lambda _: post(p), range(8))]
    assert statuses == [200] * 8
    assert slow_sim.record.peak_running == 2


def test_deadline_and_bound_of_the_queue(slow_sim, start_proxy):
    slow_sim.behavior.token_delay = 0.05  # one request holds the slot for ~1 s
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 1}}, queue={"max_wait": 0.3, "max_queued": 1})
    with ThreadPoolExecutor(3) as pool:
        holder = pool.submit(post, p)
        wait_until(lambda: slow_sim.running == 1)
        queued = pool.submit(post, p)
        wait_until(lambda: metric(p, "devstral_queue_length") == 1)
        full = post(p)  # one waits already: refused at once
        assert full.status == 503 and full.json()["error"]["code"] == "queue_full" and full.headers["retry-after"] == "1"
        timed_out = queued.result()
        assert timed_out.status == 503 and timed_out.json()["error"]["code"] == "queue_timeout" and int(timed_out.headers["retry-after"]) >= 1
        assert holder.result().status == 200
    assert len(slow_sim.record.requests) == 1  # neither refused request reached the backend
    assert metric(p, 'devstral_queue_refused_total{reason="queue_timeout"}') == 1
    assert metric(p, 'devstral_queue_refused_total{reason="queue_full"}') == 1


def test_fair_share_between_keys_and_priority(slow_sim, start_proxy):
    keys = {"authentication": {"api_keys": ["sk-a", "sk-b", "sk-vip"]}}
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 1}}, queue={"clients": {"sk-vip": {"priority": 1}}}, **keys)
    with ThreadPoolExecutor(12) as pool:
        burst = [pool.submit(post, p, "sk-a", {**CHAT, "user": f"a{k}"}) for k in range(8)]
        wait_until(lambda: metric(p, "devstral_queue_length") == 7)
        other = pool.submit(post, p, "sk-b", {**CHAT, "user": "b0"})
        wait_until(lambda: metric(p, "devstral_queue_length") == 8)
        vip = pool.submit(post, p, "sk-vip", {**CHAT, "user": "vip"})
        for f in [*burst, other, vip]:
            assert f.result().status == 200
    order = in_order(slow_sim)
    assert order.index("vip") == 1  # its class is served first: right after the one running
    assert order.index("b0") <= 3  # behind at most one more of sk-a's burst, not all seven
    assert metric(p, "devstral_queue_wait_seconds_count") == 9


def test_weights_share_the_backend(slow_sim, start_proxy):
    keys = {"authentication": {"api_keys": ["sk-a", "sk-b"]}}
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 1}}, queue={"clients": {"sk-a": {"weight": 3}}}, **keys)
    slow_sim.behavior.token_delay = 0.002
    slow_sim.behavior.gate = gate = threading.Event()  # the first request holds the slot until all 20 wait
    with ThreadPoolExecutor(24) as pool:
        first = pool.submit(post, p, "sk-b", {**CHAT, "user": "b"})
        wait_until(lambda: slow_sim.running == 1)
        futures = [pool.submit(post, p, key, {**CHAT, "user": key[-1]}) for key in ["sk-a", "sk-b"] * 10]
        wait_until(lambda: metric(p, "devstral_queue_length") == 20)
        gate.set()
        assert all(f.result().status == 200 for f in [first, *futures])
    served = "".join(in_order(slow_sim)[1:13])  # while both still wait: 3 of a's for each of b's
    assert served.count("a") == 9 and served.count("b") == 3


def test_max_share_keeps_room_for_the_other_keys(slow_sim, start_proxy):
    keys = {"authentication": {"api_keys": ["sk-a", "sk-b"]}}
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 4}}, queue={"max_share": 0.5}, **keys)
    slow_sim.behavior.token_delay = 0.02
    slow_sim.behavior.gate = gate = threading.Event()  # the engine holds sk-a's first two until sk-b's is in
    with ThreadPoolExecutor(8) as pool:
        burst = [pool.submit(post, p, "sk-a", {**CHAT, "user": "a"}) for _ in range(6)]
        wait_until(lambda: metric(p, "devstral_queue_length") == 4)  # sk-a holds 2 of the 4 slots, not 4
        wait_until(lambda: slow_sim.running == 2)
        b = pool.submit(post, p, "sk-b", {**CHAT, "user": "b"})
        wait_until(lambda: slow_sim.running == 3)  # a free slot at once, beside sk-a's two
        gate.set()
        assert b.result().status == 200
        assert all(f.result().status == 200 for f in burst)
    assert in_order(slow_sim).index("b") == 2  # a free slot at once, beside sk-a's two: no wait for them to end
    assert slow_sim.record.peak_running == 3  # sk-a never held more than its half


def test_a_max_share_for_one_client_caps_it_alone(slow_sim, start_proxy):
    keys = {"authentication": {"api_keys": ["sk-batch", "sk-ide", "sk-a"]}}  # sk-a: the metrics scrape
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 4}}, queue={"clients": {"sk-batch": {"max_share": 0.25}}}, **keys)
    slow_sim.behavior.token_delay = 0.02
    slow_sim.behavior.gate = gate = threading.Event()  # nothing finishes while the slots are counted
    with ThreadPoolExecutor(8) as pool:
        batch = [pool.submit(post, p, "sk-batch", {**CHAT, "user": "batch"}) for _ in range(3)]
        wait_until(lambda: metric(p, "devstral_queue_length") == 2)  # one slot of four for sk-batch
        wait_until(lambda: slow_sim.running == 1)
        ide = [pool.submit(post, p, "sk-ide", {**CHAT, "user": "ide"}) for _ in range(3)]
        wait_until(lambda: slow_sim.running == 4)  # sk-ide is not capped: it takes the other three
        assert metric(p, "devstral_queue_length") == 2  # sk-batch's two still wait
        gate.set()
        assert all(f.result().status == 200 for f in [*batch, *ide])
    assert in_order(slow_sim)[:4].count("ide") == 3


def test_a_client_leaving_while_queued_never_reaches_a_backend(slow_sim, start_proxy):
    slow_sim.behavior.token_delay = 0.03
    slow_sim.behavior.gate = gate = threading.Event()  # the holder keeps the slot until the leaver has left
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 1}})
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(post, p)
        wait_until(lambda: slow_sim.running == 1)
        data = json.dumps({**CHAT, "user": "leaver"}).encode()
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data))
        wait_until(lambda: metric(p, "devstral_queue_length") == 1)
        s.close()
        wait_until(lambda: metric(p, 'devstral_queue_refused_total{reason="client_gone"}') == 1)
        assert metric(p, "devstral_queue_length") == 0
        gate.set()
        assert holder.result().status == 200
    assert post(p).status == 200
    assert "leaver" not in in_order(slow_sim)


def test_no_head_of_line_blocking_across_backends(start_proxy):
    gate = threading.Event()  # model-a's backend holds its request until model-b's is answered
    a = SimThread(Behavior(models=["model-a"], reply="w " * 20, slots=10, gate=gate))
    b = SimThread(Behavior(models=["model-b"], slots=10))
    try:
        p = start_proxy(
            backends={"a": {"url": a.url, "max_in_flight": 1, "models": ["model-a"]}, "b": {"url": b.url, "max_in_flight": 1, "models": ["model-b"]}},
            model_mapping={},
        )
        with ThreadPoolExecutor(3) as pool:
            busy = [pool.submit(post, p, None, {**CHAT, "model": "model-a"}) for _ in range(2)]
            wait_until(lambda: metric(p, "devstral_queue_length") == 1)
            assert post(p, None, {**CHAT, "model": "model-b"}).status == 200  # not behind model-a's queue
            assert metric(p, "devstral_queue_length") == 1  # model-a's still waits
            gate.set()
            assert all(f.result().status == 200 for f in busy)
    finally:
        a.stop()
        b.stop()


def test_a_queued_request_takes_whichever_backend_frees_first(start_proxy):
    slow = SimThread(Behavior(token_delay=0.2, reply="w w w w w w w w w w", slots=10))
    fast = SimThread(Behavior(token_delay=0.02, reply="w w w", slots=10))
    try:
        p = start_proxy(backends={"slow": {"url": slow.url, "max_in_flight": 1}, "fast": {"url": fast.url, "max_in_flight": 1}})
        with ThreadPoolExecutor(3) as pool:
            held = [pool.submit(post, p) for _ in range(2)]
            wait_until(lambda: slow.running == 1 and fast.running == 1)
            third = post(p)
            assert third.status == 200
        assert len(fast.record.requests) == 2  # the fast one freed first and took it
        assert all(f.result().status == 200 for f in held)
    finally:
        slow.stop()
        fast.stop()


def _direct_load(sim, n: int, stop: threading.Event):
    """Clients of the same vLLM that do not go through this proxy."""

    def one():
        while not stop.is_set():
            http("POST", sim.url + "/v1/chat/completions", CHAT, timeout=30)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def test_least_loaded_reads_the_engines_own_load(start_proxy):
    busy = SimThread(Behavior(token_delay=0.02, reply="w " * 10, slots=2))
    idle = SimThread(Behavior(slots=2))
    stop = threading.Event()
    try:
        p = start_proxy(backends={"busy": {"url": busy.url}, "idle": {"url": idle.url}}, routing={"load_interval": 0.05})
        threads = _direct_load(busy, 6, stop)
        wait_until(lambda: metric(p, 'devstral_backend_engine_waiting{backend="busy"}') >= 2)
        for _ in range(20):
            assert post(p).status == 200
        assert len(idle.record.requests) >= 18  # its own in-flight count would have split them evenly
        assert metric(p, 'devstral_backend_kv_cache_usage{backend="busy"}') == 1.0
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        busy.stop()
        idle.stop()


def test_affinity_repins_off_an_overloaded_engine(start_proxy):
    sims = [SimThread(Behavior(token_delay=0.02, reply="w " * 10, slots=2)) for _ in range(2)]
    stop = threading.Event()
    threads = []
    try:
        p = start_proxy(
            backends={f"v{i}": {"url": s.url} for i, s in enumerate(sims)}, routing={"strategy": "affinity", "load_interval": 0.05, "max_engine_waiting": 2}
        )
        assert post(p, session="conversation-1").status == 200
        home = next(i for i, s in enumerate(sims) if s.record.requests)
        threads = _direct_load(sims[home], 8, stop)
        wait_until(lambda: metric(p, f'devstral_backend_engine_waiting{{backend="v{home}"}}') > 2)
        before = len(sims[home].record.requests)
        assert post(p, session="conversation-1").status == 200
        assert sims[1 - home].record.requests  # moved
        assert metric(p, f'devstral_affinity_repins_total{{backend="v{home}",reason="engine_waiting"}}') == 1
        assert len(sims[home].record.requests) >= before
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for s in sims:
            s.stop()


def test_an_engine_503_goes_to_another_backend(start_proxy):
    full = SimThread(Behavior(token_delay=0.05, reply="w " * 20, slots=1, max_queued=1))
    other = SimThread()
    stop = threading.Event()
    try:
        p = start_proxy(backends={"full": {"url": full.url}, "other": {"url": other.url}}, routing={"strategy": "round_robin", "load_interval": 0})
        threads = _direct_load(full, 3, stop)
        wait_until(lambda: full.running == 1 and full.waiting == 1)
        assert all(post(p).status == 200 for _ in range(6))
        assert full.record.engine_refused >= 1  # round robin sent some there; each went on to "other"
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        full.stop()
        other.stop()


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/chat/completions", {**CHAT, "stream": True}),
        ("/v1/responses", {"model": "mistral-sim", "input": "hi"}),
        ("/v1/messages", {"model": "mistral-sim", "max_tokens": 99, "messages": [{"role": "user", "content": "hi"}]}),
    ],
    ids=["whole", "stream", "responses", "messages"],
)
def test_the_client_leaving_aborts_the_backend_on_every_path(slow_sim, start_proxy, path, body):
    slow_sim.behavior.reply = " ".join(["w"] * 2000)
    p = start_proxy(slow_sim.url)
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (path.encode(), len(data), data))
    wait_until(lambda: slow_sim.running == 1)
    s.close()
    closed_at = time.monotonic()
    wait_until(lambda: slow_sim.record.disconnects)
    assert slow_sim.record.disconnects[0] - closed_at < 2.0  # at once: the whole reply takes ~20 s
    assert metric(p, "devstral_orphaned_generations_total") == 0
