"""The runtime table: packaged defaults, operator overrides, spec overrides."""

import pytest
import yaml

from modeldeploy.api import parse_spec
from modeldeploy.runtimes import (RuntimeTableError, load_runtime_table, resolve_runtime, runtime_from_wire,
                                  runtime_to_wire)


def test_packaged_table_covers_the_documented_formats(runtime_table):
    expected = {"sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "tensorflow", "huggingface", "llm"}
    assert runtime_table.known_formats == expected
    assert runtime_table.formats["xgboost"].image == "docker.io/seldonio/mlserver:1.7.1"
    assert runtime_table.formats["pytorch"].image.startswith("nvcr.io/nvidia/tritonserver:")
    assert runtime_table.formats["llm"].image.startswith("docker.io/vllm/vllm-openai:")
    assert runtime_table.storage_initializer.image == "ghcr.io/modeldeploy/storage-initializer:0.1.0"
    assert runtime_table.storage_initializer.cache  # this project's image: it reads spec.model.cache


def test_images_are_pinned(runtime_table):
    for fmt, entry in runtime_table.formats.items():
        tag = entry.image.rsplit(":", 1)[-1]
        assert "/" not in tag and tag != "latest", f"{fmt} image {entry.image} is not pinned"


def test_readiness_waits_for_the_model_not_the_process(runtime_table):
    paths = {fmt: entry.readiness_probe.path for fmt, entry in runtime_table.formats.items()}
    # MLServer answers /v2/health/ready with no model loaded: ask about the model.
    assert paths["sklearn"] == paths["xgboost"] == paths["lightgbm"] == "/v2/models/$(MODELDEPLOY_NAME)/ready"
    assert paths["onnx"] == "/v2/health/ready"  # Triton: ready once every model is loaded
    assert paths["huggingface"] == "/health"


def test_each_mlserver_format_picks_its_implementation(runtime_table):
    def implementation(fmt):
        env = {v["name"]: v["value"] for v in runtime_table.formats[fmt].env}
        return env["MLSERVER_MODEL_IMPLEMENTATION"]

    assert implementation("sklearn") == "mlserver_sklearn.SKLearnModel"
    assert implementation("xgboost") == "mlserver_xgboost.XGBoostModel"
    assert implementation("lightgbm") == "mlserver_lightgbm.LightGBMModel"


def test_operator_can_supply_its_own_table(tmp_path):
    path = tmp_path / "runtimes.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storageInitializer": {"image": "registry.internal/storage-initializer:v1"},
                "formats": {
                    "paddle": {
                        "image": "registry.internal/paddle-serving:2.0",
                        "port": 9292,
                        "readinessProbe": {"path": "/ready"},
                    }
                },
            }
        )
    )
    table = load_runtime_table(path)
    assert table.known_formats == {"paddle"}
    spec = parse_spec(
        {"model": {"uri": "s3://m/p", "version": "1", "format": "paddle"}}, known_formats=table.known_formats
    )
    runtime = resolve_runtime(spec, table)
    assert (runtime.image, runtime.port, runtime.model_mount_path) == ("registry.internal/paddle-serving:2.0", 9292, "/mnt/models")
    assert runtime.storage_initializer.image == "registry.internal/storage-initializer:v1"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("formats: {}\n", "storageInitializer"), ("storageInitializer: {image: x}\nformats: {a: {port: 1}}\n", "image"), (": :", "invalid")],
)
def test_a_broken_table_is_a_clear_error(tmp_path, content, fragment):
    path = tmp_path / "runtimes.yaml"
    path.write_text(content)
    with pytest.raises(RuntimeTableError, match=fragment):
        load_runtime_table(path)


def test_a_missing_table_file_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeTableError, match="cannot read runtime table"):
        load_runtime_table(tmp_path / "nope.yaml")


def test_spec_runtime_overrides_field_by_field(runtime_table):
    spec = parse_spec(
        {
            "model": {"uri": "s3://m/f", "version": "1", "format": "sklearn"},
            "runtime": {
                "image": "docker.io/seldonio/mlserver:1.7.1-slim",
                "env": [{"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": "custom.Model"}, {"name": "EXTRA", "value": "1"}],
            },
        },
        known_formats=runtime_table.known_formats,
    )
    runtime = resolve_runtime(spec, runtime_table)
    assert runtime.image == "docker.io/seldonio/mlserver:1.7.1-slim"
    assert runtime.port == 8080  # from the table
    assert runtime.readiness.path == "/v2/models/$(MODELDEPLOY_NAME)/ready"  # from the table
    names = [v["name"] for v in runtime.env]
    assert names[0] == "MLSERVER_MODEL_IMPLEMENTATION" and names[-1] == "EXTRA"  # replaced in place
    assert runtime.env[0]["value"] == "custom.Model"


def test_a_custom_image_without_format_must_say_how_to_ask_whether_the_model_is_loaded(runtime_table):
    """Readiness never rests on the process alone (issue 11): a port check
    would call a pod ready while the model still loads."""
    raw = {"model": {"uri": "s3://m/f", "version": "1"}, "runtime": {"image": "example.org/server:1"}}
    with pytest.raises(ValueError, match=r"spec\.runtime\.readinessPath: required for a custom image without "
                                         r"spec\.model\.format: an HTTP path that answers 200 only once the model"):
        parse_spec(raw, known_formats=runtime_table.known_formats)
    raw["runtime"]["readinessPath"] = "/ready"
    runtime = resolve_runtime(parse_spec(raw, known_formats=runtime_table.known_formats), runtime_table)
    assert runtime.readiness.path == "/ready" and runtime.port == 8080


def test_operator_env_names_are_reserved(runtime_table):
    raw = {"model": {"uri": "s3://m/f", "version": "1", "format": "sklearn"}, "runtime": {"env": [{"name": "MODELDEPLOY_NAME", "value": "x"}]}}
    with pytest.raises(ValueError, match=r"spec\.runtime\.env\[0\]\.name: MODELDEPLOY_\* variables are set by the operator"):
        parse_spec(raw, known_formats=runtime_table.known_formats)


def test_mlserver_pods_drain_before_the_server_stops(runtime_table):
    """MLServer fails requests from SIGTERM on: its pods keep serving 5 s
    first (a preStop sleep) while kube-proxy drops their endpoint. Measured on
    the real node (tests/realnode/test_real_canary.py): without it, 4-7 of
    ~80 requests failed while the replaced pods terminated."""
    from modeldeploy.builders.pod import build_pod_template
    from modeldeploy.builders.naming import Role

    spec = parse_spec({"model": {"uri": "s3://m/f", "version": "1", "format": "sklearn"}},
                      known_formats=runtime_table.known_formats)
    runtime = resolve_runtime(spec, runtime_table)
    assert runtime.drain_seconds == 5
    [server] = build_pod_template(spec, runtime, name="fraud", role=Role.STABLE, revision="r")["spec"]["containers"]
    assert server["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert runtime_from_wire(runtime_to_wire(runtime)) == runtime, "recorded with the stable revision"

    custom = parse_spec({"model": {"uri": "s3://m/f", "version": "1"},
                         "runtime": {"image": "example.com/srv:1", "readinessPath": "/ready"}},
                        known_formats=runtime_table.known_formats)
    bare = resolve_runtime(custom, runtime_table)
    [server] = build_pod_template(custom, bare, name="fraud", role=Role.STABLE, revision="r")["spec"]["containers"]
    assert bare.drain_seconds == 0 and "lifecycle" not in server
    assert "drainSeconds" not in runtime_to_wire(bare)


def server_of(spec, runtime):
    from modeldeploy.builders.naming import Role
    from modeldeploy.builders.pod import build_pod_template

    [server] = build_pod_template(spec, runtime, name="fraud", role=Role.STABLE, revision="r")["spec"]["containers"]
    return server


@pytest.mark.parametrize(("fmt", "budget"), [("sklearn", 600), ("onnx", 1200), ("llm", 1800)])
def test_a_model_gets_its_runtimes_load_timeout_as_a_startup_probe_on_the_readiness_check(runtime_table, fmt,
                                                                                          budget):
    """KServe #3795: 20B models killed by probes before they finish loading.
    The startup probe asks the readiness question with the whole budget; the
    kubelet runs no other probe until it passes."""
    spec = parse_spec({"model": {"uri": "s3://m/f", "version": "1", "format": fmt}},
                      known_formats=runtime_table.known_formats)
    runtime = resolve_runtime(spec, runtime_table)
    server = server_of(spec, runtime)
    startup = server["startupProbe"]
    assert startup["httpGet"] == server["readinessProbe"]["httpGet"]
    assert startup["httpGet"] is not server["readinessProbe"]["httpGet"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == budget
    assert "livenessProbe" not in server
    assert runtime_from_wire(runtime_to_wire(runtime)) == runtime, "recorded with the stable revision"


@pytest.mark.parametrize(("load_timeout", "period", "threshold"), [("30s", 10, 3), ("45s", 5, 9), ("1h", 10, 360),
                                                                    ("17s", 1, 17)])
def test_spec_model_load_timeout_overrides_the_runtimes_exactly(runtime_table, load_timeout, period, threshold):
    spec = parse_spec({"model": {"uri": "s3://m/f", "version": "1", "format": "sklearn", "loadTimeout": load_timeout}},
                      known_formats=runtime_table.known_formats)
    startup = server_of(spec, resolve_runtime(spec, runtime_table))["startupProbe"]
    assert (startup["periodSeconds"], startup["failureThreshold"]) == (period, threshold)


def test_a_custom_runtime_gets_a_startup_probe_only_when_the_spec_gives_a_load_timeout(runtime_table):
    raw = {"model": {"uri": "s3://m/f", "version": "1"}, "runtime": {"image": "example.com/srv:1",
                                                                    "readinessPath": "/loaded"}}
    custom = parse_spec(raw, known_formats=runtime_table.known_formats)
    bare = resolve_runtime(custom, runtime_table)
    assert "startupProbe" not in server_of(custom, bare) and "loadTimeoutSeconds" not in runtime_to_wire(bare)
    raw["model"]["loadTimeout"] = "5m"
    timed = parse_spec(raw, known_formats=runtime_table.known_formats)
    startup = server_of(timed, resolve_runtime(timed, runtime_table))["startupProbe"]
    assert startup["httpGet"] == {"path": "/loaded", "port": "http"}
    assert startup["failureThreshold"] * startup["periodSeconds"] == 300


@pytest.mark.parametrize("bad", ["5s", "25h", "10 minutes", "0s"])
def test_a_load_timeout_out_of_range_is_refused_naming_the_field(runtime_table, bad):
    with pytest.raises(ValueError, match=r"spec\.model\.loadTimeout"):
        parse_spec({"model": {"uri": "s3://m/f", "version": "1", "format": "sklearn", "loadTimeout": bad}},
                   known_formats=runtime_table.known_formats)
