"""The shipped Grafana dashboard and Prometheus alert rules: the rules pass promtool's check
and its unit tests on synthetic series (deploy/prometheus/alerts_test.yml), and every metric
the dashboard and the rules read is one a running proxy exports."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import http

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "devstral-proxy.json"


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool (Debian's prometheus package) is needed: .ci/run installs it"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, cwd=RULES)


def test_the_alert_rules_pass_promtool_and_their_unit_tests():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def used_metrics() -> set[str]:
    exprs = [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for t in panel["targets"]]
    exprs.append((RULES / "alerts.yml").read_text())
    names = set(re.findall(r"\bdevstral_[a-z_]+", "\n".join(exprs)))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


@pytest.fixture
def exported(sim, start_proxy) -> set[str]:
    p = start_proxy(sim.url, cache={"store": "memory"})
    ask = {"model": "gpt-4", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}
    assert http("POST", p.url + "/v1/chat/completions", ask).status == 200
    text = http("GET", p.url + "/metrics").body.decode()
    return set(re.findall(r"^# TYPE (\S+)", text, re.M))


def test_every_metric_the_dashboard_and_the_rules_read_is_exported(exported):
    used = used_metrics()
    assert len(used) >= 12
    assert used <= exported, sorted(used - exported)
