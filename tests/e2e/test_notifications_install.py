"""Notifications as installed: components/notifications mounts the endpoints
from the Secret `modeldeploy-notifications` into the operator's pod, and the
operator's RBAC still reads no Secret. The operator, run as its
ServiceAccount with a token the API server mints for it, reads the endpoints
from the Secret's file (what the kubelet would mount; there is no image
here) and notifies a local receiver, with no 403 on the way."""
from __future__ import annotations

import base64

import pytest
import yaml

from support.canary import GATEWAY, model_v, wait_phase
from support.install import compose, find
from support.logs import denials
from support.models import apply_md, model_deployment, wait_ready
from support.notify_receiver import Receiver
from support.process import OperatorProcess
from support.waiting import wait_until
from test_install_rbac import install_as_service_account, uninstall

SECRET, KEY, MOUNT = "modeldeploy-notifications", "endpoints.yaml", "/etc/modeldeploy/notify"


def test_the_component_mounts_the_secret_as_the_config_file_and_grants_nothing(cluster, tmp_path):
    docs = compose(cluster, tmp_path / "install", resources=["."], components=["components/notifications"])
    pod = find(docs, "Deployment", "modeldeploy-operator")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELDEPLOY_NOTIFY_CONFIG"] == f"{MOUNT}/{KEY}"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == MOUNT)
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"] == {"secretName": SECRET, "items": [{"key": KEY, "path": KEY}]}
    plain = compose(cluster, tmp_path / "plain", resources=["."])
    roles = lambda ds: [d for d in ds if d["kind"] in ("ClusterRole", "Role")]  # noqa: E731
    assert roles(docs) == roles(plain)  # the component adds no rule
    for role in roles(docs):
        assert not any("secrets" in rule["resources"] for rule in role["rules"]), role


@pytest.fixture
def installed(cluster, tmp_path):
    installed = install_as_service_account(cluster, tmp_path, ["components/gateway-api", "components/notifications"])
    yield installed
    uninstall(cluster, installed)


def test_the_operator_as_its_service_account_notifies_from_the_mounted_secret(cluster, installed, tmp_path):
    ns, name = installed["namespace"], "announced"
    system_ns = next(d["metadata"]["namespace"] for d in installed["docs"] if d["kind"] == "ServiceAccount")
    with Receiver() as receiver:
        endpoints = yaml.safe_dump({"endpoints": {"ops": {"url": receiver.url("/ops")}}})
        cluster.kubectl("-n", system_ns, "create", "secret", "generic", SECRET, f"--from-literal={KEY}={endpoints}")
        # What the kubelet mounts: the Secret's key as a file (read here as the admin).
        data = cluster.get_json("-n", system_ns, "secret", SECRET)["data"][KEY]
        (tmp_path / "notify").mkdir()
        (tmp_path / "notify" / KEY).write_bytes(base64.b64decode(data))
        # The operator itself cannot read it.
        denied = cluster.kubectl("-n", system_ns, "get", "secret", SECRET, kubeconfig=installed["kubeconfig"],
                                 check=False)
        assert denied.returncode != 0 and "Forbidden" in denied.stderr, denied.stderr

        log = tmp_path / "operator.log"
        doc = model_deployment(name, replicas=1, traffic=GATEWAY, rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
        doc["metadata"]["annotations"] = {"modeldeploy.io/notify": "ops"}
        with OperatorProcess(cluster, ns, log, kubeconfig=installed["kubeconfig"],
                             env={"MODELDEPLOY_NOTIFY_CONFIG": str(tmp_path / "notify" / KEY)}):
            apply_md(cluster, ns, doc)
            wait_ready(cluster, ns, name)
            apply_md(cluster, ns, model_v(doc, "v2"))
            wait_phase(cluster, ns, name, "Paused")
            wait_until(lambda: receiver.events("/ops") == ["CanaryStarted", "Paused"], timeout=30,
                       what="CanaryStarted and Paused at the receiver",
                       describe=lambda: (receiver.events("/ops"), log.read_text()[-1500:]))
    assert not denials(log.read_text()), denials(log.read_text())
