"""A weighted HTTPRoute on a real Gateway API data plane: the operator's own
HTTPRoute (traffic.provider gatewayAPI) attached to a Gateway that Traefik
serves (support/gateway.py), real requests sent through it to MLServer on
real-0, and the share v2 answers measured at two canary steps against
status.traffic. The canary's weight may only reach the route once its pod is
ready, so requests flowing through the Gateway for the whole rollout, from
the apply of v2 until the replaced pods are gone, must all be answered."""
from __future__ import annotations

import json
import time

from support import real_node
from support.gateway import route_accepted, traefik_gateway
from support.inference import answers, model_on_real_node, predict_once, requests_meanwhile, sklearn_from_store, two_versions_in_store
from support.models import apply_md, get_md, is_true, model_deployment, status_view
from support.waiting import wait_until

NAME_LABEL = "modeldeploy.io/name"
# Traefik splits by a deterministic weighted round robin, not at random: over
# every request it forwards, the canary's count is off its weight by about
# one round at most. The measured window counts the test's own requests and
# the background sender's that Traefik served in the same span (either
# stream alone is a biased sample of one interleaved sequence). Two points
# leave room for requests in flight at the window's edges; a wrong split (the
# replica ratio, 50%, or the previous step) is far out.
TOLERANCE = 0.02
FIRST_STEP, SECOND_STEP = 20, 70


def test_the_share_answered_through_a_real_gateway_matches_the_weights_the_operator_wrote(
        cluster, real_namespace, real_operator, serving_images, model_store, tmp_path, request):
    ns, name = real_namespace, "iris"
    started = time.monotonic()
    show = real_node.progress_display(request)
    row, old, new = two_versions_in_store(cluster, model_store, tmp_path, ns, name)

    with traefik_gateway(cluster, ns, tmp_path / "traefik", show) as gateway:
        url = gateway.url
        # One stable pod; each weighted step runs one canary pod next to it.
        doc = model_on_real_node(model_deployment(
            name, replicas=1,
            traffic={"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [gateway.parent_ref()]}},
            rollout={"steps": [{"setWeight": FIRST_STEP}, {"pause": {"duration": "60s"}},
                               {"setWeight": SECOND_STEP}, {"pause": {}}]}))
        sklearn_from_store(doc, model_store, f"{ns}/{name}/v1", "v1")
        apply_md(cluster, ns, doc)

        selector = f"{NAME_LABEL}={name}"

        def report():
            return (status_view(get_md(cluster, ns, name)), real_node.pod_report(cluster, ns, selector),
                    f"Traefik's log:\n{gateway.log_tail()}")

        def state(phase: str | None = None, version: str | None = None, canary: int | None = None):
            md = get_md(cluster, ns, name)
            st = md.get("status", {})
            return ((phase is None or st.get("phase") == phase)
                    and st.get("observedGeneration") == md["metadata"]["generation"]
                    and (version is None or (st.get("stable") or {}).get("modelVersion") == version)
                    and (canary is None or ((st.get("traffic") or {}).get("canary") == canary
                                            and (st.get("traffic") or {}).get("verified")
                                            and (st.get("canary") or {}).get("readyReplicas") == 1))
                    and md)

        wait_until(lambda: state("Ready", "v1") and is_true(get_md(cluster, ns, name), "Ready"), timeout=300,
                   what=f"{ns}/{name} Ready on v1", describe=report)
        v1_ready = time.monotonic()
        wait_until(lambda: route_accepted(cluster, ns, name), timeout=60,
                   what=f"Traefik to accept the operator's HTTPRoute {ns}/{name}", describe=report)
        wait_until(lambda: predict_once(url, name, row) == old, timeout=60,
                   what="a first answer from v1 through the Gateway", describe=report)
        before = answers(url, name, row, 50)
        assert before == [old] * 50, {str(a)[:200]: before.count(a) for a in before}

        def measure(weight: int, previous: int = 0, n: int = 200):
            """At the step that gives the canary `weight`, with its pod
            ready: the route's weights, then the share v2 answers of `n`
            requests and of the background's sent meanwhile."""
            md = wait_until(lambda: state(canary=weight), timeout=240,
                            what=f"{ns}/{name} at {weight}% (verified on the route) with its canary pod ready",
                            describe=report)
            traffic = md["status"]["traffic"]
            route = cluster.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", ns, "httproutes", name)
            written = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
            assert sorted(written.values()) == sorted([traffic["stable"], traffic["canary"]]), (written, traffic)
            # Traefik applies a route change within a few seconds (a 2 s
            # throttle, longer under load): from 0%, the first answer from v2
            # shows it has; from an earlier step, a batch of 40 in which v2
            # answers more than halfway between the two weights (WRR is
            # exact to a round, so the old weight cannot). Not counted.
            if previous == 0:
                wait_until(lambda: predict_once(url, name, row) == new, timeout=60,
                           what=f"a first answer from v2 through the Gateway at {weight}%", describe=report)
            else:
                halfway = (previous + weight) / 2 * 40 / 100
                wait_until(lambda: answers(url, name, row, 40).count(new) > halfway, timeout=60,
                           what=f"Traefik to route {weight}% (more than {halfway:.0f} of 40 answered by v2)",
                           describe=report)
            begin = len(during)
            seen = answers(url, name, row, n) + during[begin:len(during)]
            assert set(seen) <= {old, new}, {str(a)[:200]: seen.count(a) for a in seen if a not in (old, new)}
            n = len(seen)
            share = seen.count(new) / n
            still = get_md(cluster, ns, name)["status"]["traffic"]
            assert (still["stable"], still["canary"]) == (traffic["stable"], traffic["canary"]), (
                f"the split moved during the measurement: {traffic} -> {still}")
            assert abs(share - weight / 100) <= TOLERANCE, (
                f"v2 answered {seen.count(new)}/{n} = {share:.3f} through the Gateway; status.traffic says "
                f"{traffic}, the HTTPRoute {written} (tolerance ±{TOLERANCE})")
            return seen.count(new), n

        # Ship v2 with requests flowing through the Gateway from now until the
        # replaced pods are gone.
        v2_doc = json.loads(json.dumps(doc))
        v2_doc["spec"]["model"].update(uri=model_store.uri(f"{ns}/{name}/v2"), version="v2")
        with requests_meanwhile(url, name, row, batch=2, workers=2, pause=0.05) as during:
            apply_md(cluster, ns, v2_doc)
            first = measure(FIRST_STEP)
            second = measure(SECOND_STEP, previous=FIRST_STEP)
            wait_until(lambda: state("Paused", "v1", SECOND_STEP), timeout=60,
                       what=f"{ns}/{name} Paused at {SECOND_STEP}% for approval", describe=report)
            # Approve the way a GitOps repository would: in the spec.
            approved = json.loads(json.dumps(v2_doc))
            approved["spec"]["rollout"]["approvedVersion"] = "v2"
            apply_md(cluster, ns, approved)
            approved_at = time.monotonic()
            done = wait_until(lambda: state("Ready", "v2"), timeout=300, what=f"{ns}/{name} Ready with stable v2",
                              describe=report)
            promoted = time.monotonic()
            assert done["status"]["traffic"]["canary"] == 0, done["status"]

            wait_until(lambda: real_node.only_pods_left(cluster, ns, selector, 1), timeout=120,
                       what="only the pod of stable v2 left", describe=report)
        failed = [a for a in during if a not in (old, new)]
        assert not failed, {str(a)[:200]: failed.count(a) for a in failed}
        assert len(during) >= 100, f"only {len(during)} requests through the rollout"
        after = answers(url, name, row, 100)
        assert after == [new] * 100, {str(a)[:200]: after.count(a) for a in after}
    print(f"\ngateway split through Traefik: v2 answered {first[0]}/{first[1]} at {FIRST_STEP}% and "
          f"{second[0]}/{second[1]} at {SECOND_STEP}% (tolerance ±{TOLERANCE}); {len(during)} of {len(during)} "
          f"requests answered from the apply of v2 until the replaced pods were gone; v1 Ready "
          f"{v1_ready - started:.0f} s, approval to Ready on v2 {promoted - approved_at:.0f} s, then 100/100 "
          f"answered by v2; total {time.monotonic() - started:.0f} s")
