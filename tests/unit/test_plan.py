"""reconcile.plan: one whole pass as a pure function, as the controller runs it.

A small loop here plays the API server (the applied manifests become the live
children, the status is stored, annotations consumed), so each test reads as
what a user would see. The stateful property test (test_rollout_safety.py)
drives the same plan() against a much fuller fake cluster.
"""
from datetime import datetime, timedelta, timezone

from modeldeploy.reconcile.plan import Plan, plan
from modeldeploy.reconcile.world import World
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.status import PodSummary

TABLE = load_runtime_table()
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}], "hostnames": ["a.example"]}}


def spec(version="v7", **extra):
    return {"model": {"uri": f"s3://m/{version}", "version": version, "format": "sklearn"}, "replicas": 2,
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}]}, **extra}


class Loop:
    """Just enough API server: children live as applied, made ready at once."""

    def __init__(self, name="fraud", uid="uid-fraud", **raw):
        self.model = {"metadata": {"name": name, "namespace": "ml", "uid": uid, "generation": 1,
                                   "annotations": {}}, "spec": spec(**raw)}
        self.children: dict = {}
        self.neighbours: dict = {}
        self.now = NOW
        self.table = TABLE
        self.plans: list[Plan] = []

    def world(self, **extra) -> World:
        return World(model=self.model, children=dict(self.children), neighbours={**self.neighbours, **self.children},
                     pods=self.pods(), now=self.now, table=self.table, **extra)

    def pods(self):
        pods = []
        for (kind, name), body in self.children.items():
            if kind == "Deployment":
                labels = body["spec"]["template"]["metadata"]["labels"]
                for i in range(body["spec"].get("replicas", 1)):
                    pods.append(PodSummary(name=f"{name}-{i}", role=labels["modeldeploy.io/role"],
                                           revision=labels["modeldeploy.io/revision"], ready=True))
        return tuple(pods)

    def run(self, **extra) -> Plan:
        step = plan(self.world(**extra))
        for manifest in step.apply:
            live = {**manifest, "metadata": {**manifest["metadata"], "generation": 1}}
            if manifest["kind"] == "Deployment":
                n = manifest["spec"].get("replicas", 1)
                live["status"] = {"observedGeneration": 1, "replicas": n, "updatedReplicas": n, "readyReplicas": n,
                                  "availableReplicas": n}
            self.children[(manifest["kind"], manifest["metadata"]["name"])] = live
        for key in step.prune:
            self.children.pop(key, None)
        if step.status is not None:
            self.model = {**self.model, "status": step.status}
        annotations = {k: v for k, v in self.model["metadata"]["annotations"].items() if k not in step.consume}
        self.model = {**self.model, "metadata": {**self.model["metadata"], "annotations": annotations}}
        self.plans.append(step)
        self.now += timedelta(seconds=5)
        return step

    def break_spec(self, version, **raw):
        """A spec the operator refuses (a reserved env var), generation unchanged."""
        bad = spec(version, **raw)
        bad["runtime"] = {"env": [{"name": "MODELDEPLOY_NAME", "value": "x"}]}
        self.model = {**self.model, "spec": bad}

    def edit(self, **raw):
        meta = self.model["metadata"]
        self.model = {**self.model, "metadata": {**meta, "generation": meta["generation"] + 1}, "spec": spec(**raw)}

    @property
    def status(self):
        return self.model["status"]

    def condition(self, kind):
        return next((c["status"], c["reason"]) for c in self.status["conditions"] if c["type"] == kind)


def test_a_steady_pass_writes_nothing():
    loop = Loop()
    for _ in range(3):
        loop.run()
    again = loop.run()
    assert (again.apply, again.prune, again.status, again.events) == ((), (), None, ())
    assert loop.condition("Ready") == ("True", "Serving")


def test_the_status_is_written_before_the_request_is_consumed():
    """Defect 10: plan() hands the controller both; the controller writes the
    status first (controller._report), so the plan must carry the decision
    in the status of the same pass that consumes the annotation."""
    loop = Loop()
    loop.run(), loop.run()
    loop.edit(version="v8")
    loop.run(), loop.run()
    loop.model["metadata"]["annotations"]["modeldeploy.io/abort"] = "true"
    step = loop.run()
    assert step.consume == ("modeldeploy.io/abort",)
    assert step.status["rollout"]["stage"] == "RolledBack"


# -- defect 1: an invalid spec freezes everything ---------------------------------------


def test_defect1_an_invalid_spec_keeps_the_stable_snapshot_the_rollout_and_the_route():
    loop = Loop(traffic=GATEWAY)
    loop.run(), loop.run()
    loop.edit(version="v8", traffic=GATEWAY)
    for _ in range(3):
        loop.run()
    before = loop.status
    assert before["traffic"]["canary"] == 50 and before["rollout"]["stage"] == "Canary"
    route = loop.children[("HTTPRoute", "fraud")]
    loop.break_spec("v8", traffic=GATEWAY)
    held = loop.run()
    assert (held.apply, held.prune, held.consume) == ((), (), ())
    assert loop.condition("Stalled") == ("True", "InvalidSpec")
    for block in ("stable", "rollout", "traffic", "history", "canary"):
        assert loop.status.get(block) == before.get(block), block
    assert loop.children[("HTTPRoute", "fraud")] == route
    # Fixed: the canary resumes where it was, nothing went to stable untried.
    loop.edit(version="v8", traffic=GATEWAY)
    loop.run()
    assert loop.status["rollout"]["stage"] == "Canary"
    assert loop.status["stable"]["modelVersion"] == "v7"


def test_an_invalid_spec_reports_what_the_route_carries_after_a_lost_status_write():
    """Found by the stateful test (invariant 4): a pass carried out an abort
    (the route went to 100/0) but lost its status write, so the status still
    said 50/50; then the spec turned invalid. The held status reads the route
    back instead of repeating the stale split."""
    loop = Loop(traffic=GATEWAY)
    loop.run(), loop.run()
    loop.edit(version="v8", traffic=GATEWAY)
    for _ in range(3):
        loop.run()
    stale = loop.status
    assert stale["traffic"]["canary"] == 50
    loop.model["metadata"]["annotations"]["modeldeploy.io/abort"] = "true"
    loop.run()
    assert loop.children[("HTTPRoute", "fraud")]["spec"]["rules"][0]["backendRefs"][1]["weight"] == 0
    loop.model = {**loop.model, "status": stale}  # that pass's status write was lost
    loop.break_spec("v8", traffic=GATEWAY)
    loop.run()
    assert loop.condition("Stalled") == ("True", "InvalidSpec")
    assert (loop.status["traffic"]["stable"], loop.status["traffic"]["canary"]) == (100, 0), loop.status["traffic"]


def test_a_held_status_does_not_count_a_superseded_canarys_ready_pods():
    """Found by the 2,000-example soak (invariant 4): v9 supersedes canary v8
    (the canary Deployment is re-templated; v8's pods are still ready until
    Recreate removes them), then the spec turns invalid. The held split
    counts canary pods of the Deployment's revision, not its readyReplicas."""
    loop = Loop()
    loop.run(), loop.run()
    loop.edit(version="v8")
    for _ in range(3):
        loop.run()
    assert loop.status["traffic"]["canary"] == 50
    v8_pods = loop.pods()
    loop.edit(version="v9")
    loop.run()
    loop.pods = lambda: v8_pods  # not replaced yet
    loop.break_spec("v9")
    loop.run()
    assert loop.condition("Stalled") == ("True", "InvalidSpec")
    assert (loop.status["traffic"]["stable"], loop.status["traffic"]["canary"]) == (100, 0), loop.status["traffic"]


def test_defect1_a_child_the_api_server_refuses_holds_everything_too():
    loop = Loop()
    loop.run(), loop.run()
    before = loop.status
    loop.edit(version="v8")
    held = loop.run(refused="spec: the API server refused a child built from it: bad env name")
    assert held.apply == () and loop.condition("Stalled") == ("True", "InvalidSpec")
    assert loop.status["stable"] == before["stable"] and "bad env name" in loop.status["message"]
    assert [e.reason for e in held.events] == ["InvalidSpec"]


# -- defect 5: names another owner holds ------------------------------------------------


def test_defect5_a_child_name_held_by_another_model_deployment_is_never_taken():
    first = Loop(name="x", uid="uid-x")
    first.run()
    later = Loop(name="x-canary", uid="uid-x-canary")
    later.neighbours = dict(first.children)  # Service x-canary is x's canary role Service
    step = later.run()
    assert step.apply == () and step.prune == ()
    assert later.condition("Stalled") == ("True", "NameConflict")
    assert "Service x-canary already exists and is controlled by ModelDeployment x" in later.status["message"]


# -- defect 14: the client Service under weighted providers ---------------------------


def test_defect14_under_a_weighted_provider_the_client_service_selects_stable_only():
    loop = Loop(traffic=GATEWAY)
    loop.run()
    selector = loop.children[("Service", "fraud")]["spec"]["selector"]
    assert selector == {"modeldeploy.io/name": "fraud", "modeldeploy.io/role": "stable"}
    replicas = Loop()
    replicas.run()
    assert replicas.children[("Service", "fraud")]["spec"]["selector"] == {"modeldeploy.io/name": "fraud"}


# -- defect 4: the HPA floor during a canary --------------------------------------------


def test_defect4_the_hpa_min_replicas_is_held_at_stables_count_during_a_canary():
    auto = {"autoscaling": {"minReplicas": 2, "maxReplicas": 10}, "resources": {"requests": {"cpu": "1"}}}
    loop = Loop()
    loop.model["spec"] = {k: v for k, v in spec(**auto).items() if k != "replicas"}
    loop.run(), loop.run()
    stable = loop.children[("Deployment", "fraud-stable")]
    stable["spec"]["replicas"] = 5  # the HPA scaled it
    stable["status"].update(replicas=5, readyReplicas=5, updatedReplicas=5, availableReplicas=5)
    loop.edit(version="v8", **auto)
    loop.model["spec"].pop("replicas")
    loop.run()
    assert loop.children[("HorizontalPodAutoscaler", "fraud")]["spec"]["minReplicas"] == 5
    loop.model["metadata"]["annotations"]["modeldeploy.io/promote"] = "true"
    for _ in range(4):
        loop.run()
    assert loop.status["history"][-1]["result"] == "Promoted"
    assert loop.children[("HorizontalPodAutoscaler", "fraud")]["spec"]["minReplicas"] == 2


# -- history ------------------------------------------------------------------------------


def test_returning_to_the_stable_version_adds_no_duplicate_deployed_entry():
    loop = Loop()
    loop.run(), loop.run()
    for _ in range(3):
        loop.edit(version="v8")
        loop.run()
        loop.edit(version="v7")  # back to stable: the canary is aborted
        loop.run(), loop.run()
    results = [(h["modelVersion"], h["result"]) for h in loop.status["history"]]
    assert results == [("v7", "Deployed"), ("v8", "Aborted"), ("v8", "Aborted"), ("v8", "Aborted")]


# -- defect 8: a new runtime table (an operator upgrade) --------------------------------


def test_defect8_a_new_runtime_table_re_templates_nothing_until_the_next_spec_change():
    loop = Loop()
    loop.run(), loop.run()
    old_image = loop.children[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]["containers"][0]["image"]
    entry = TABLE.formats["sklearn"].model_copy(update={"image": "registry.example/sklearn-server:2.0"})
    loop.table = TABLE.model_copy(update={"formats": {**TABLE.formats, "sklearn": entry}})  # the upgrade
    steady = loop.run()
    assert steady.apply == () and loop.status["rollout"]["stage"] == "Stable", "no re-template, no canary"
    loop.edit(version="v8")
    loop.run()
    assert loop.status["rollout"]["stage"] == "Canary"
    pods = {role: loop.children[("Deployment", f"fraud-{role}")]["spec"]["template"]["spec"]["containers"][0]["image"]
            for role in ("stable", "canary")}
    assert pods == {"stable": old_image, "canary": "registry.example/sklearn-server:2.0"}


def test_a_stable_rolled_out_before_the_default_spread_is_not_re_templated_by_the_upgrade(monkeypatch):
    """Issue 14: each role's replicas spread across nodes by default. A model
    rolled out by an operator without that default (its recorded runtime has
    no spreadReplicas) keeps its pods through the upgrade; the next spec
    change brings the spread, through a canary."""
    import dataclasses

    from modeldeploy.reconcile import plan as plan_module

    today = plan_module.resolve_runtime
    monkeypatch.setattr(plan_module, "resolve_runtime",  # the operator before the default
                        lambda spec, table: dataclasses.replace(today(spec, table), spread_replicas=False))
    loop = Loop()
    loop.run(), loop.run()
    stable = loop.children[("Deployment", "fraud-stable")]
    assert "topologySpreadConstraints" not in stable["spec"]["template"]["spec"]
    assert "spreadReplicas" not in loop.status["stable"]["runtime"]
    monkeypatch.setattr(plan_module, "resolve_runtime", today)  # the upgrade
    steady = loop.run()
    assert steady.apply == () and steady.status is None, "no write: no re-template, no canary"
    loop.edit(version="v8")
    loop.run()
    canary = loop.children[("Deployment", "fraud-canary")]["spec"]["template"]["spec"]
    assert canary["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["modeldeploy.io/role"] == "canary"
    assert "topologySpreadConstraints" not in loop.children[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]


def test_topology_spread_constraints_set_to_nothing_switch_the_spread_off():
    loop = Loop()
    loop.model["spec"]["topologySpreadConstraints"] = []
    loop.run(), loop.run()
    assert "topologySpreadConstraints" not in loop.children[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]
