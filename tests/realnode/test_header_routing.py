"""Issue 12, item 2, with real requests: a header-routed canary through a
real Gateway API data plane (Traefik, support/gateway.py) to MLServer on the
real node. At 0% weight, requests with the canary header are answered by v2
and every other request by v1; when the canary is aborted, header requests
go back to v1, and none is answered with an error meanwhile."""
from __future__ import annotations

import json
import time

from support import real_node
from support.gateway import route_accepted, traefik_gateway
from support.inference import answers, model_on_real_node, predict_once, sklearn_from_store, two_versions_in_store
from support.models import apply_md, get_md, model_deployment, status_view
from support.waiting import wait_until

HEADER = {"x-model-canary": "true"}


def test_requests_with_the_canary_header_reach_the_canary_at_0_percent_and_no_others(
        cluster, real_namespace, real_operator, serving_images, model_store, tmp_path, request):
    ns, name = real_namespace, "iris-hdr"
    started = time.monotonic()
    show = real_node.progress_display(request)
    row, old, new = two_versions_in_store(cluster, model_store, tmp_path, ns, name)

    with traefik_gateway(cluster, ns, tmp_path / "traefik", show) as gateway:
        url = gateway.url
        doc = model_on_real_node(model_deployment(
            name, replicas=1,
            traffic={"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [gateway.parent_ref()]},
                     "canaryHeaders": [{"name": "x-model-canary", "value": "true"}]},
            rollout={"steps": [{"pause": {}}, {"setWeight": 50}]}))
        sklearn_from_store(doc, model_store, f"{ns}/{name}/v1", "v1")
        apply_md(cluster, ns, doc)
        selector = f"modeldeploy.io/name={name}"

        def report():
            return (status_view(get_md(cluster, ns, name)), real_node.pod_report(cluster, ns, selector),
                    f"Traefik's log:\n{gateway.log_tail()}")

        def traffic():
            return (get_md(cluster, ns, name).get("status") or {}).get("traffic") or {}

        wait_until(lambda: (get_md(cluster, ns, name).get("status") or {}).get("phase") == "Ready", timeout=300,
                   what=f"{ns}/{name} Ready on v1", describe=report)
        wait_until(lambda: route_accepted(cluster, ns, name), timeout=60,
                   what=f"Traefik to accept the HTTPRoute {ns}/{name} with its header rule", describe=report)
        wait_until(lambda: predict_once(url, name, row) == old, timeout=60, what="a first answer from v1",
                   describe=report)
        before = answers(url, name, row, 20, headers=HEADER)
        assert before == [old] * 20, f"no canary: header requests go to stable {before}"

        v2_doc = json.loads(json.dumps(doc))
        v2_doc["spec"]["model"].update(uri=model_store.uri(f"{ns}/{name}/v2"), version="v2")
        apply_md(cluster, ns, v2_doc)
        wait_until(lambda: traffic().get("headersToCanary") is True, timeout=240,
                   what="requests with the header sent to the canary (its pod ready)", describe=report)
        assert (traffic()["stable"], traffic()["canary"]) == (100, 0)
        # Traefik applies a route change within seconds: the first answer
        # from v2 to a header request shows it has.
        wait_until(lambda: predict_once(url, name, row, HEADER) == new, timeout=60,
                   what="an answer from v2 to a request with the header", describe=report)
        with_header = answers(url, name, row, 60, headers=HEADER)
        without = answers(url, name, row, 60)
        assert with_header == [new] * 60, {str(a)[:200]: with_header.count(a) for a in with_header}
        assert without == [old] * 60, {str(a)[:200]: without.count(a) for a in without}

        cluster.kubectl("-n", ns, "annotate", "md", name, "modeldeploy.io/abort=true")
        wait_until(lambda: traffic().get("headersToCanary") is False, timeout=60,
                   what="header requests back on stable after the abort", describe=report)
        wait_until(lambda: predict_once(url, name, row, HEADER) == old, timeout=60,
                   what="v1 answering requests with the header again", describe=report)
        after = answers(url, name, row, 40, headers=HEADER)
        assert after == [old] * 40, {str(a)[:200]: after.count(a) for a in after}
    print(f"\nheader routing through Traefik: 60/60 header requests answered by v2 and 60/60 others by v1 at 0% "
          f"weight; back to v1 after the abort; total {time.monotonic() - started:.0f} s")
