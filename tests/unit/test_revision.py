"""The revision changes exactly when the pods would change."""

import subprocess
import sys
from pathlib import Path

import modeldeploy

from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.api import parse_spec
from modeldeploy.builders import compute_revision
from modeldeploy.builders.revision import revision_of as builders_revision_of
from modeldeploy.runtimes import load_runtime_table, resolve_runtime, runtime_from_wire, runtime_to_wire

TABLE = load_runtime_table()
BASE = {"model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"}, "replicas": 2}


def revision_of(changes: dict, table=TABLE) -> str:
    return compute_revision(parse_spec({**BASE, **changes}, known_formats=table.known_formats), table)


def test_is_ten_hex_characters():
    revision = revision_of({})
    assert len(revision) == 10 and int(revision, 16) >= 0


def test_scaling_and_rollout_settings_keep_the_revision():
    same = revision_of({})
    assert revision_of({"replicas": 5}) == same
    assert revision_of(
        {"replicas": None, "autoscaling": {"maxReplicas": 4}, "resources": {"requests": {"cpu": "1"}}}
    ) != same  # resources reach the pods...
    assert revision_of({"resources": {"requests": {"cpu": "1"}}}) == revision_of(
        {"replicas": None, "autoscaling": {"maxReplicas": 4}, "resources": {"requests": {"cpu": "1"}}}
    )  # ...autoscaling itself does not
    assert revision_of({"rollout": {"strategy": "Recreate", "progressDeadlineSeconds": 60}}) == same
    assert revision_of({"traffic": {"provider": "istio", "istio": {"hosts": ["fraud.example.com"]}}}) == same


def test_anything_reaching_the_pods_changes_the_revision():
    base = revision_of({})
    changes = [
        {"model": {**BASE["model"], "uri": "s3://models/fraud/v8"}},
        {"model": {**BASE["model"], "version": "v8"}},
        {"model": {**BASE["model"], "format": "xgboost"}},
        {"runtime": {"image": "docker.io/seldonio/mlserver:1.7.2"}},
        {"runtime": {"env": [{"name": "LOG_LEVEL", "value": "debug"}]}},
        {"resources": {"limits": {"memory": "2Gi"}}},
        {"podMetadata": {"labels": {"team": "risk"}}},
        {"nodeSelector": {"pool": "cpu"}},
        {"tolerations": [{"key": "spot", "operator": "Exists"}]},
        {"serviceAccountName": "fraud"},
        {"model": {**BASE["model"], "credentials": {"secretName": "model-store"}}},
        {"model": {**BASE["model"], "credentials": {"secretName": "model-store-2"}}},
    ]
    revisions = [revision_of(change) for change in changes]
    assert base not in revisions
    assert len(set(revisions)) == len(revisions)


def test_a_new_image_in_the_runtime_table_is_a_new_revision():
    """Upgrading the operator's runtime table rolls the pods out like any other change."""
    sklearn = TABLE.formats["sklearn"].model_copy(update={"image": "docker.io/seldonio/mlserver:1.8.0"})
    upgraded = TABLE.model_copy(update={"formats": {**TABLE.formats, "sklearn": sklearn}})
    assert revision_of({}, upgraded) != revision_of({})


def test_same_in_another_process():
    """Hash randomization or dict order must not change it (operators restart)."""
    code = (
        "from modeldeploy.api import parse_spec;from modeldeploy.builders import compute_revision;"
        "from modeldeploy.runtimes import load_runtime_table as L;t=L();"
        f"print(compute_revision(parse_spec({BASE!r}, known_formats=t.known_formats), t))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(modeldeploy.__file__).parents[1])},
    )
    assert result.stdout.strip() == revision_of({})


labels = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True), max_size=4
)


@settings(max_examples=50, deadline=None)
@given(labels)
def test_independent_of_key_order(pod_labels):
    forward = revision_of({"podMetadata": {"labels": pod_labels}})
    backward = revision_of({"podMetadata": {"labels": dict(reversed(list(pod_labels.items())))}})
    assert forward == backward


def test_a_spec_without_credentials_keeps_the_revision_it_had_before_the_field(tmp_path):
    """spec.model.credentials is new: the dump the revision hashes leaves it out
    when unset, so upgrading the operator does not roll out every model.
    Measured with the runtime table of that operator (MLServer's readiness
    path and drainSeconds came since; a stable model keeps the runtime it was
    rolled out with anyway, status.stable.runtime). A runtime without
    drainSeconds or loadTimeout, and a model without loadTimeout, hash as
    before those fields existed; so does a storage initializer without
    `cache` (KServe's image, the table's before this project's)."""
    shipped = Path(modeldeploy.__file__).parent / "data" / "runtimes.yaml"
    then = tmp_path / "runtimes.yaml"
    text = shipped.read_text().replace("/v2/models/$(MODELDEPLOY_NAME)/ready", "/v2/health/ready").replace(
        "ghcr.io/modeldeploy/storage-initializer:0.1.0", "docker.io/kserve/storage-initializer:v0.15.0")
    then.write_text("\n".join(line for line in text.splitlines()
                               if "drainSeconds:" not in line and "loadTimeout:" not in line
                               and "metricsPort:" not in line and line.strip() != "cache: true"))
    table = load_runtime_table(then)
    spec = parse_spec(BASE, known_formats=table.known_formats)
    # As recorded with a revision rolled out before spreadReplicas (status.stable.runtime).
    recorded = runtime_from_wire(runtime_to_wire(resolve_runtime(spec, table)) | {"spreadReplicas": False})
    assert recorded.spread_replicas is False
    assert builders_revision_of(spec, recorded) == "2699209bdc"  # as computed by the operator before the field existed


SCHEDULING = [
    {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]}}}},
    {"topologySpreadConstraints": []},
    {"priorityClassName": "models-high"},
    {"runtimeClassName": "nvidia"},
    {"imagePullSecrets": [{"name": "registry"}]},
]


def test_each_scheduling_field_is_a_new_revision_and_unset_ones_change_nothing():
    revisions = {revision_of(field) for field in SCHEDULING}
    assert len(revisions) == len(SCHEDULING) and revision_of({}) not in revisions
