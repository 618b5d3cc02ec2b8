"""models:/ URIs: parsing, the MLflow REST answers the kube layer turns into
a resolution (with its cache and retries), and what the pure plan does with
a resolution, a moved alias and an unreachable registry."""
import asyncio

import pytest
from pydantic import ValidationError

from modeldeploy.api.registry import RegistryLookup, Resolution, parse_registry_uri
from modeldeploy.api.spec import ModelSource
from modeldeploy.kube.registry import Registry, RegistryConfig, RegistryError, resolve
from test_plan import Loop as PlanLoop

TRACKING = "http://mlflow.ml:5000"


# -- the URI -------------------------------------------------------------------

def test_a_registry_uri_names_a_version_or_an_alias():
    ref = parse_registry_uri("models:/fraud/7")
    assert (ref.name, ref.version, ref.alias, ref.mutable) == ("fraud", "7", None, False)
    ref = parse_registry_uri("models:/fraud detector@champion")
    assert (ref.name, ref.alias, ref.mutable) == ("fraud detector", "champion", True)


@pytest.mark.parametrize("uri", ["models:/fraud", "models:/fraud/v7", "models:/fraud@", "models://fraud/7",
                                 "models:/fraud/7/extra", "models:/a@b@c"])
def test_a_malformed_registry_uri_is_refused_in_words(uri):
    with pytest.raises(ValidationError, match=r"models:/<name>/<version number> or models:/<name>@<alias>"):
        ModelSource(uri=uri, version="x")


def test_poll_interval_only_follows_an_alias():
    ModelSource(uri="models:/fraud@champion", version="x", registry={"pollInterval": "1m"})
    with pytest.raises(ValidationError, match="follows an alias"):
        ModelSource(uri="models:/fraud/7", version="x", registry={"pollInterval": "1m"})
    with pytest.raises(ValidationError, match="between 10s and 24h"):
        ModelSource(uri="models:/fraud@champion", version="x", registry={"pollInterval": "1s"})


# -- the REST answers --------------------------------------------------------------

class FakeMlflow:
    """MLflow's REST answers, as the server gives them, for a dict of versions."""

    def __init__(self, versions, aliases, status="READY"):
        self.versions, self.aliases, self.status, self.calls = versions, aliases, status, []

    def __call__(self, path, query):
        self.calls.append((path, dict(query)))
        if path == "registered-models/alias":
            number = self.aliases.get(query["alias"])
            if number is None:
                raise RegistryError("HTTP 404 from the MLflow registry: RESOURCE_DOES_NOT_EXIST")
            return {"model_version": self._version(number)}
        if path == "model-versions/get":
            return {"model_version": self._version(query["version"])}
        assert path == "model-versions/get-download-uri"
        return {"artifact_uri": self.versions[str(query["version"])][0]}

    def _version(self, number):
        return {"name": "fraud", "version": str(number), "run_id": self.versions[str(number)][1],
                "status": self.status}


def test_an_alias_resolves_to_its_versions_artifact_and_run():
    mlflow = FakeMlflow({"1": ("s3://models/fraud/1", "run-a"), "2": ("s3://models/fraud/2", "run-b")},
                        {"champion": "2"})
    found = resolve(RegistryConfig(TRACKING), "models:/fraud@champion", get=mlflow)
    assert (found.uri, found.version, found.run_id) == ("s3://models/fraud/2", "2", "run-b")
    assert [call[0] for call in mlflow.calls] == ["registered-models/alias", "model-versions/get-download-uri"]


def test_a_proxied_artifact_becomes_the_tracking_servers_http_endpoint():
    mlflow = FakeMlflow({"3": ("mlflow-artifacts:/1/abc/artifacts/model", "run-c")}, {})
    found = resolve(RegistryConfig(TRACKING), "models:/fraud/3", get=mlflow)
    assert found.uri == f"{TRACKING}/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model"


def test_a_version_still_registering_is_no_answer():
    mlflow = FakeMlflow({"3": ("s3://m/3", "r")}, {}, status="PENDING_REGISTRATION")
    with pytest.raises(RegistryError, match="version 3 is PENDING_REGISTRATION"):
        resolve(RegistryConfig(TRACKING), "models:/fraud/3", get=mlflow)


def test_without_a_tracking_server_configured_the_error_says_which_setting():
    with pytest.raises(RegistryError, match="MODELDEPLOY_MLFLOW_TRACKING_URI"):
        resolve(RegistryConfig(None), "models:/fraud/3", get=lambda *_: {})


def test_credentials_go_as_mlflows_own_headers():
    assert RegistryConfig(TRACKING, token="t").headers() == {"Authorization": "Bearer t"}
    assert RegistryConfig(TRACKING, username="u", password="p").headers() == {"Authorization": "Basic dTpw"}


# -- the cache -----------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def registry_with(answers):
    """A Registry whose reads pop `answers` (a Resolution, or an error string)."""
    clock, reads = Clock(), []

    def resolver(config, uri):
        reads.append(uri)
        answer = answers.pop(0)
        if isinstance(answer, str):
            raise RegistryError(answer)
        return answer

    return Registry(RegistryConfig(TRACKING), clock=clock, resolver=resolver), clock, reads


def md(uri, poll=None, status=None):
    model = {"uri": uri, "version": "champion", **({"registry": {"pollInterval": poll}} if poll else {})}
    return {"spec": {"model": model}, "status": status or {}}


def look(registry, model):
    return asyncio.run(registry.lookup(("ml", "fraud"), model))


def test_a_version_number_is_read_once():
    registry, clock, reads = registry_with([Resolution("models:/fraud/1", "s3://m/1", "1", "r1")])
    for _ in range(3):
        assert look(registry, md("models:/fraud/1")).resolution.uri == "s3://m/1"
        clock.now += 3600
    assert reads == ["models:/fraud/1"] and registry.due_in(("ml", "fraud"), md("models:/fraud/1")) is None


def test_an_alias_is_read_again_only_every_poll_interval():
    first, moved = (Resolution("models:/fraud@champion", f"s3://m/{n}", n) for n in "12")
    registry, clock, reads = registry_with([first, moved])
    model = md("models:/fraud@champion", poll="1m")
    assert look(registry, model).resolution == first
    clock.now += 59
    assert look(registry, model).resolution == first and len(reads) == 1
    assert registry.due_in(("ml", "fraud"), model) == pytest.approx(1)
    clock.now += 1
    assert look(registry, model).resolution == moved and len(reads) == 2


def test_an_alias_not_followed_is_not_read_again():
    registry, clock, reads = registry_with([Resolution("models:/fraud@champion", "s3://m/1", "1")])
    look(registry, md("models:/fraud@champion"))
    clock.now += 86400
    look(registry, md("models:/fraud@champion"))
    assert len(reads) == 1


def test_after_a_restart_the_answer_recorded_in_status_is_used_without_a_call():
    registry, _, reads = registry_with([])
    status = {"model": {"uri": "models:/fraud@champion", "resolvedUri": "s3://m/1", "version": "1", "runId": "r"}}
    found = look(registry, md("models:/fraud@champion", status=status))
    assert (found.resolution.uri, found.resolution.run_id, found.error, reads) == ("s3://m/1", "r", None, [])


def test_a_failed_read_is_retried_with_a_bounded_backoff():
    good = Resolution("models:/fraud/1", "s3://m/1", "1")
    registry, clock, reads = registry_with(["unreachable"] * 8 + [good])
    key, model = ("ml", "fraud"), md("models:/fraud/1")
    waits = []
    for _ in range(8):
        found = look(registry, model)
        assert found.error == "unreachable"
        waits.append(registry.due_in(key, model))
        assert look(registry, model).error == "unreachable" and len(reads) == len(waits)  # not before it is due
        clock.now += waits[-1]
    assert waits == [2, 4, 8, 16, 32, 60, 60, 60]
    assert look(registry, model).resolution == good and look(registry, model).error is None


# -- the plan -------------------------------------------------------------------------

def raw_spec(uri="models:/fraud@champion", poll=None):
    model = {"uri": uri, "version": "champion", "format": "sklearn",
             **({"registry": {"pollInterval": poll}} if poll else {})}
    return {"model": model, "replicas": 2, "rollout": {"steps": [{"setWeight": 50}]}}


class Loop(PlanLoop):
    """test_plan's Loop (children live as applied, pods ready at once) over a
    models:/ spec, each pass given what the registry answered."""

    def __init__(self, **raw):
        super().__init__(uid="u")
        self.model["spec"] = raw_spec(**raw)

    def run(self, lookup):
        return super().run(registry=lookup)

    @property
    def status(self):
        return self.model.get("status") or {}

    def condition(self, kind):
        return next(c for c in self.status["conditions"] if c["type"] == kind)

    def initializer_uri(self, role="stable"):
        deployment = self.children[("Deployment", f"fraud-{role}")]
        return deployment["spec"]["template"]["spec"]["initContainers"][0]["args"][0]


def found(version, run=None, uri="models:/fraud@champion"):
    return RegistryLookup(Resolution(uri, f"s3://models/fraud/{version}", str(version), run or f"run-{version}"))


def test_a_model_never_resolved_creates_nothing_and_says_why():
    loop = Loop()
    step = loop.run(RegistryLookup(error="MLflow registry at http://mlflow:5000 unreachable: refused"))
    assert step.apply == () and loop.children == {}
    stalled = loop.condition("Stalled")
    assert stalled["reason"] == "RegistryUnavailable" and "nothing is created until it resolves" in stalled["message"]
    assert "unreachable: refused" in stalled["message"]


def test_the_pods_download_the_resolved_artifact_and_status_names_version_and_run():
    loop = Loop()
    loop.run(found(1))
    loop.run(found(1))
    assert loop.initializer_uri() == "s3://models/fraud/1"
    assert loop.status["model"] == {"uri": "models:/fraud@champion", "resolvedUri": "s3://models/fraud/1",
                                    "version": "1", "runId": "run-1"}
    [deployed] = loop.status["history"]
    assert deployed["uri"] == "s3://models/fraud/1"
    assert deployed["registry"] == {"uri": "models:/fraud@champion", "version": "1", "runId": "run-1"}
    assert loop.run(found(1)).status is None  # nothing changed, nothing written


def test_the_revision_follows_the_artifact_not_the_way_it_was_asked():
    by_alias, by_number = Loop(), Loop(uri="models:/fraud/1")
    by_alias.run(found(1))
    by_number.run(found(1, uri="models:/fraud/1"))
    assert by_alias.status["stable"]["revision"] == by_number.status["stable"]["revision"]
    polled = Loop(poll="1m")
    polled.run(found(1))
    assert polled.status["stable"]["revision"] == by_alias.status["stable"]["revision"]  # pollInterval is not pod-shaping


def test_a_moved_alias_starts_a_canary_recorded_against_its_registry_version():
    loop = Loop(poll="1m")
    loop.run(found(1))
    loop.run(found(1))
    assert "follows the MLflow registry" in loop.condition("Ready")["message"]
    assert "every 1m" in loop.status["message"]
    loop.run(found(2))
    rollout = loop.status["rollout"]
    assert rollout["stage"] == "Canary" and rollout["uri"] == "s3://models/fraud/2"
    assert rollout["registry"] == {"uri": "models:/fraud@champion", "version": "2", "runId": "run-2"}
    assert loop.initializer_uri("canary") == "s3://models/fraud/2"
    assert loop.initializer_uri() == "s3://models/fraud/1"  # stable untouched


def test_an_unreachable_registry_keeps_the_last_answer_and_says_so():
    """The registry down while an alias is followed: what serves is not
    touched, the last answer stays in force (a canary in flight is still
    judged and can still be rolled back), and Ready says RegistryUnavailable
    without asking a person for anything (not Stalled)."""
    loop = Loop(poll="1m")
    loop.run(found(1))
    loop.run(found(1))
    before = dict(loop.children)
    step = loop.run(RegistryLookup(found(1).resolution, error="MLflow registry at x unreachable"))
    assert step.apply == () and step.prune == () and loop.children == before
    ready = loop.condition("Ready")
    assert ready["status"] == "True", ready
    assert "RegistryUnavailable: MLflow registry at x unreachable" in ready["message"]
    assert "stays at version 1 as last read" in loop.status["message"]
    assert loop.condition("Stalled")["status"] == "False"
    assert loop.status["model"]["version"] == "1"
    loop.run(found(1))
    assert "RegistryUnavailable" not in loop.condition("Ready")["message"]
    assert "RegistryUnavailable" not in loop.status["message"]
