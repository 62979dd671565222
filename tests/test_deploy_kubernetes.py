"""The Kubernetes manifests: the base and every overlay render with kustomize (`kubectl
kustomize`) and each object validates against the schemas of a current Kubernetes release
(kubernetes-validate, strict); the ConfigMap's config.toml loads in the proxy's own loader."""

import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from devstral_proxy.config import build

KUBE = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
TARGETS = [KUBE / "base", *sorted(p for p in (KUBE / "overlays").iterdir() if p.is_dir())]
VERSION = "1.31.0"  # a current release the package carries the schemas of


def render(target: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (Debian's kubernetes-client) renders the kustomizations: .ci/run installs it"
    done = subprocess.run([kubectl, "kustomize", str(target)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "deprecated" not in done.stderr, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_it_renders_and_every_object_is_valid(target):
    docs = render(target)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):  # a CRD: the operator's schema is not Kubernetes'
            assert doc["spec"]["endpoints"][0]["path"] == "/metrics" and doc["spec"]["endpoints"][0]["port"] == "http"
            continue
        kubernetes_validate.validate(doc, VERSION, strict=True)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready" and container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["securityContext"]["readOnlyRootFilesystem"] and container["securityContext"]["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_the_configmaps_config_loads_in_the_proxys_loader(target, tmp_path):
    (config_map,) = [d for d in render(target) if d["kind"] == "ConfigMap"]
    doc = tomllib.loads(config_map["data"]["config.toml"])
    keys = tmp_path / "api-keys"  # the Secret, mounted where the config names it
    keys.write_text("sk-test\n")
    assert doc["authentication"]["api_keys_file"] == "/etc/devstral-proxy/keys/api-keys"
    doc["authentication"]["api_keys_file"] = str(keys)
    config = build(doc, env={})
    assert config.server.port == 9000 and config.backend_list()
