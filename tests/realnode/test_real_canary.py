"""A canary measured with real requests: v1 and v2 are two real models with
different predictions, served by MLServer on real-0 behind the `<name>`
Service (the replicas provider: the split is the ratio of ready pods), and
the share of requests v2 answers through the ClusterIP must match what
status.traffic reports."""
from __future__ import annotations

import json
import math
import time

from support import real_node
from support.inference import answers, model_on_real_node, predict_once, requests_meanwhile, sklearn_from_store, two_versions_in_store
from support.models import apply_md, get_md, is_true, model_deployment, status_view
from support.waiting import wait_until

NAME_LABEL = "modeldeploy.io/name"
# Standard deviations of a binomial share allowed between the measured split
# and status.traffic: a correct split fails about once in 16,000 runs.
SIGMAS = 4


def test_the_share_of_real_requests_answered_by_the_canary_matches_status_traffic(
        cluster, real_namespace, real_operator, serving_images, model_store, tmp_path):
    ns, name = real_namespace, "iris"
    started = time.monotonic()
    row, old, new = two_versions_in_store(cluster, model_store, tmp_path, ns, name)

    # Two stable pods; a step of 34% is one canary pod next to them: 1/3 of the ready pods.
    doc = model_on_real_node(model_deployment(name, replicas=2, rollout={"steps": [{"setWeight": 34}, {"pause": {}}]}))
    sklearn_from_store(doc, model_store, f"{ns}/{name}/v1", "v1")
    apply_md(cluster, ns, doc)

    selector = f"{NAME_LABEL}={name}"
    report = lambda: (status_view(get_md(cluster, ns, name)), real_node.pod_report(cluster, ns, selector))  # noqa: E731

    def phase(wanted: str, version: str | None = None, done: bool = True):
        md = get_md(cluster, ns, name)
        st = md.get("status", {})
        return (st.get("phase") == wanted and st.get("observedGeneration") == md["metadata"]["generation"]
                and (version is None or (st.get("stable") or {}).get("modelVersion") == version)
                and (not done or is_true(md, "Ready")) and md)

    wait_until(lambda: phase("Ready", "v1"), timeout=300, what=f"{ns}/{name} Ready on v1", describe=report)
    v1_ready = time.monotonic()
    ip = cluster.core.read_namespaced_service(name, ns).spec.cluster_ip
    url = f"http://{ip}"
    before = answers(url, name, row, 20)
    assert before == [old] * 20, before

    # Ship v2 and let the open pause hold the split still.
    v2_doc = json.loads(json.dumps(doc))
    v2_doc["spec"]["model"].update(uri=model_store.uri(f"{ns}/{name}/v2"), version="v2")
    apply_md(cluster, ns, v2_doc)

    def paused():
        md = phase("Paused", "v1", done=False)
        st = md and md["status"]
        return (md and (st.get("canary") or {}).get("readyReplicas") == 1
                and (st.get("stable") or {}).get("readyReplicas") == 2 and md)

    md = wait_until(paused, timeout=300, what=f"{ns}/{name} Paused with 1 canary pod ready next to 2 stable",
                    describe=report)
    paused_at = time.monotonic()
    traffic = md["status"]["traffic"]
    assert traffic["canary"] + traffic["stable"] == 100 and 0 < traffic["canary"] < 100, traffic
    # The Service's endpoints hold all three ready pods; the first answer from
    # v2 shows kube-proxy routes to the canary (these warm-up requests are not counted).
    wait_until(lambda: predict_once(url, name, row) == new, timeout=60,
               what="a first answer from the canary through the Service", describe=report)

    n = 300
    seen = answers(url, name, row, n)
    assert set(seen) <= {old, new}, sorted({s for s in seen if s not in (old, new)}, key=str)[:5]
    share = seen.count(new) / n
    p = traffic["canary"] / 100
    tolerance = SIGMAS * math.sqrt(p * (1 - p) / n)
    measured = time.monotonic() - paused_at
    assert abs(share - p) <= tolerance, (
        f"v2 answered {seen.count(new)}/{n} = {share:.3f}, status.traffic says {traffic} "
        f"(tolerance ±{tolerance:.3f}, {SIGMAS} standard deviations)")
    # The split held still for the whole measurement.
    still = get_md(cluster, ns, name)["status"]
    assert still["phase"] == "Paused" and still["traffic"] == traffic, (traffic, still)

    # Promote: stable takes v2 pod by pod, then the canary goes. Requests flow
    # the whole time, until the replaced pods (the canary's, the v1 stable
    # ones) are gone: not one may fail. Each pod keeps serving for the
    # runtime's drainSeconds after its deletion starts (a preStop sleep), so
    # kube-proxy has dropped its endpoint before MLServer gets SIGTERM
    # (without it, 4-7 of ~80 requests failed here).
    with requests_meanwhile(url, name, row, batch=4, workers=4) as during:
        cluster.kubectl("-n", ns, "annotate", "modeldeployment", name, "modeldeploy.io/promote=true")
        done = wait_until(lambda: phase("Ready", "v2"), timeout=300, what=f"{ns}/{name} Ready with stable v2",
                          describe=report)
        promoted = time.monotonic()
        assert done["status"]["traffic"]["canary"] == 0, done["status"]

        wait_until(lambda: real_node.only_pods_left(cluster, ns, selector, 2), timeout=120,
                   what="only the 2 pods of stable v2 left", describe=report)
        drained = time.monotonic()
    failed = [a for a in during if a not in (old, new)]
    assert not failed, {str(a)[:200]: failed.count(a) for a in failed}
    assert len(during) >= 40, f"only {len(during)} requests through the promotion"
    n_after = 100
    after = answers(url, name, row, n_after)
    assert after == [new] * n_after, {str(a)[:200]: after.count(a) for a in after}
    print(f"\ncanary with real requests: v2 answered {seen.count(new)}/{n} = {share:.3f} of requests at "
          f"status.traffic {traffic} (tolerance ±{tolerance:.3f}); v1 Ready {v1_ready - started:.0f} s, "
          f"paused {paused_at - v1_ready:.0f} s later, measured in {measured:.0f} s, promoted in "
          f"{promoted - paused_at - measured:.0f} s; {len(during)} of {len(during)} requests answered through the "
          f"promotion and until the replaced pods were gone ({drained - promoted:.1f} s after Ready), then "
          f"{n_after}/{n_after} answered by v2; "
          f"total {time.monotonic() - started:.0f} s")

