"""promote/abort: when they are refused and what they announce; and the one
line and exit code a user gets for each kind of trouble with the cluster."""
import json

import pytest
from kubernetes.client.exceptions import ApiException

from modeldeploy.cli import errors as clierrors
from modeldeploy.cli import main
from modeldeploy.cli.errors import CliError
from modeldeploy.cli.kubeapi import Cluster, default_namespace, translated
from modeldeploy.cli.requests import pending, plan_request


def md(stage="Canary", step=1, total=4, generation=3, observed=3, annotations=None):
    return {
        "metadata": {"name": "fraud", "namespace": "models", "generation": generation,
                     "annotations": annotations or {}},
        "status": {
            "observedGeneration": observed,
            "stable": {"revision": "5f0c2a91d3", "modelVersion": "v7"},
            "rollout": {"stage": stage, "revision": "9ab1c2d3e4", "modelVersion": "v8", "step": step,
                        "totalSteps": total},
        },
    }


def refusal(doc, action) -> str:
    with pytest.raises(CliError) as caught:
        plan_request(doc, action)
    assert caught.value.code == clierrors.FAILED and len(caught.value.lines) == 1
    return caught.value.lines[0]


def test_promote_says_how_many_steps_it_skips_and_what_it_promotes():
    planned = plan_request(md(step=1, total=4), "promote")
    assert planned.annotation == "modeldeploy.io/promote"
    assert planned.value == "9ab1c2d3e4"  # the canary judged here, never one that replaced it
    assert planned.announcement == ("promote requested: fraud will skip the remaining 3 steps and promote "
                                    "v8 (revision 9ab1c2d3e4), replacing stable v7")
    assert "the remaining 1 step and" in plan_request(md(step=3, total=4), "promote").announcement
    assert plan_request(md(step=4, total=4), "promote").announcement.startswith(
        "promote requested: fraud will promote v8")


def test_abort_says_it_rolls_back_to_stable():
    planned = plan_request(md(), "abort")
    assert planned.annotation == "modeldeploy.io/abort"
    assert planned.value == "9ab1c2d3e4"
    assert planned.announcement == ("abort requested: fraud will roll back v8 (revision 9ab1c2d3e4) and send "
                                    "all traffic to stable v7")
    assert "will stop promoting v8" in plan_request(md(stage="Promoting"), "abort").announcement


def test_no_canary_in_flight_is_refused_in_one_line():
    for action in ("promote", "abort"):
        assert refusal(md(stage="Stable"), action) == \
            f"nothing to {action}: fraud has no canary in flight (stable v7 serves alone)"
    assert refusal(md(stage="RolledBack"), "promote") == (
        "nothing to promote: fraud has no canary in flight (it rolled back v8 (revision 9ab1c2d3e4); "
        "change the spec to try a new version)")
    no_status = {"metadata": {"name": "fraud"}}
    assert refusal(no_status, "abort").startswith("nothing to abort: fraud has no canary in flight")
    assert refusal(md(stage="Promoting"), "promote") == \
        "nothing to promote: fraud is already promoting v8 (revision 9ab1c2d3e4)"


def test_a_status_behind_its_spec_is_refused_rather_than_guessed():
    # A new spec may have replaced the canary the status shows: the annotation
    # would act on a revision the user has not seen.
    assert refusal(md(generation=4, observed=3), "promote") == (
        "fraud: the operator has not yet reported on generation 4 (status is for 3); wait for it and try again")


def test_pending_requests_are_the_annotations_not_yet_consumed():
    assert pending(md(annotations={"modeldeploy.io/abort": "x", "other": "y"})) == ["modeldeploy.io/abort"]
    assert pending(md()) == []


# -- errors from the cluster, one line and a code each --------------------------------


def translate(error) -> CliError:
    with pytest.raises(CliError) as caught:
        with translated(Cluster(api=None, where="https://127.0.0.1:6443"), "fraud", "models"):
            raise error
    return caught.value


def status_body(reason, name="fraud", message=""):
    return json.dumps({"kind": "Status", "reason": reason, "message": message, "details": {"name": name}})


def test_api_errors_become_one_line_with_an_exit_code():
    missing = translate(ApiException(404, "Not Found", body=status_body("NotFound")))
    assert (missing.code, missing.lines) == (clierrors.NOT_FOUND, (
        "modeldeployment fraud not found in namespace models (kubectl get md -A lists them)",))
    no_crd = translate(ApiException(404, "Not Found", body="404 page not found"))
    assert no_crd.code == clierrors.NOT_FOUND and "install the CRD" in no_crd.lines[0]
    assert translate(ApiException(401, "Unauthorized", body="")).code == clierrors.NO_CLUSTER
    forbidden = translate(ApiException(403, "Forbidden", body=status_body("Forbidden", message="no access")))
    assert (forbidden.code, forbidden.lines) == (clierrors.FAILED, (
        "forbidden: no access (ask for RBAC on modeldeployments.modeldeploy.io)",))


def test_a_missing_kubeconfig_file_is_no_cluster(tmp_path, capsys):
    missing = tmp_path / "kubeconfig"
    assert main(["status", "fraud", "--kubeconfig", str(missing)]) == clierrors.NO_CLUSTER
    assert capsys.readouterr().err == (f"modeldeploy: kubeconfig {missing} does not exist: start one (make "
                                       "cluster-up) or point --kubeconfig / KUBECONFIG at a reachable cluster\n")


def test_a_file_that_is_not_a_kubeconfig_is_no_cluster(tmp_path, capsys):
    broken = tmp_path / "kubeconfig"
    broken.write_text("just some text\n")
    assert main(["history", "fraud", "--kubeconfig", str(broken)]) == clierrors.NO_CLUSTER
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "kubeconfig" in err


def test_the_namespace_defaults_to_the_kubeconfig_context(tmp_path):
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: models}}]\n")
    assert default_namespace(str(config)) == "models"
    config.write_text(config.read_text().replace(", namespace: models", ""))
    assert default_namespace(str(config)) == "default"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["promote"])
    assert caught.value.code == clierrors.USAGE
