"""Model discovery's log lines and memory stay bounded whatever a backend's model list says,
and no name a backend or client chose can forge a log line (text format)."""

import logging
from types import SimpleNamespace

from devstral_proxy.logs import JsonFormatter, TextFormatter
from devstral_proxy.monitor import MAX_MODEL_FACTS, BackendMonitor


def _backend():
    return SimpleNamespace(name="gpu0", generations={}, unknown_logged=set())


def test_an_unknown_generation_is_logged_once_however_often_the_list_is_read(caplog):
    monitor, backend = BackendMonitor(SimpleNamespace(backends=[]), None), _backend()
    models = [{"id": "house-model", "root": "/models/house"}, {"id": "devstral", "root": "mistralai/Devstral-Small-2507"}]
    with caplog.at_level(logging.INFO, logger="devstral_proxy"):
        for _ in range(200):  # each client GET /v1/models reads the list again
            monitor.learn_generations(backend, models)
    assert len(caplog.records) == 2  # one line per distinct fact: the unknown one, the learnt one
    assert "devstral" in backend.generations and backend.unknown_logged == {"house-model"}


def test_names_that_never_repeat_stay_bounded(caplog):
    monitor, backend = BackendMonitor(SimpleNamespace(backends=[]), None), _backend()
    with caplog.at_level(logging.INFO, logger="devstral_proxy"):
        for call in range(40):
            monitor.learn_generations(backend, [{"id": f"m-{call}-{i}", "root": "x"} for i in range(1024)])
    assert len(backend.generations) + len(backend.unknown_logged) == MAX_MODEL_FACTS
    assert len(caplog.records) == MAX_MODEL_FACTS


def test_a_forged_name_stays_on_its_line():
    record = logging.LogRecord("devstral_proxy", logging.WARNING, __file__, 1, "model %s", ("evil\n2026 ERROR pid=1 forged\x1b[31m",), None)
    text = TextFormatter().format(record)
    assert "\n" not in text and "\x1b" not in text and "evil\\x0a2026" in text and "\\x1b[31m" in text
    assert "\n" not in JsonFormatter().format(record) and "\x1b" not in JsonFormatter().format(record)


def test_engine_load_reads_only_its_lines_and_refuses_impossible_values():
    from devstral_proxy.monitor import engine_load

    page = (
        b"# HELP vllm:num_requests_running Number of requests running.\n"
        b'vllm:num_requests_running{model_name="a"} 3.0\n'
        b'vllm:num_requests_running{model_name="b"} 2.0\n'
        b'vllm:num_requests_running_total{model_name="a"} 999.0\n'  # a longer name: not this metric
        b'vllm:num_requests_waiting{model_name="a"} 4.0\n'
        b'vllm:kv_cache_usage_perc{model_name="a"} 0.25\n'
    )
    assert engine_load(page) == (5, 4, 0.25)
    hostile = (
        b"vllm:num_requests_running -7\nvllm:num_requests_waiting 1e18\nvllm:kv_cache_usage_perc 3.5\n"
        b"vllm:num_requests_running nan\nvllm:num_requests_waiting inf\nvllm:num_requests_running{x} 2"
    )
    assert engine_load(hostile) == (2, 0, 0.0)  # only the one possible value counts
    assert engine_load(b"# nothing of vLLM here\nother_metric 1\n") is None


def test_a_large_page_costs_a_search_per_metric_not_a_pass_per_line():
    """A page of a million other lines: linear byte searches only (checked by the answer; the
    reading cap, MAX_METRICS_BYTES, refuses pages beyond 2 MiB before this)."""
    from devstral_proxy.monitor import MAX_METRICS_BYTES, engine_load

    noise = b"other_metric 1\n" * ((MAX_METRICS_BYTES - 100) // 15)
    assert engine_load(noise + b"vllm:num_requests_running 6\n") == (6, 0, 0.0)
