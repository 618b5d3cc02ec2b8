"""Builder output compared with reviewed YAML in tests/unit/golden/.

After an intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_builders_golden.py
"""


import pytest

from support.golden import assert_matches_golden
from modeldeploy.api import parse_spec
from modeldeploy.builders import Owner, Role, build_deployment
from modeldeploy.reconcile.plan import steady_children

OWNER = Owner(name="fraud", namespace="ml", uid="0b7e6a4c-1111-4222-8333-944455556666")

CASES = {
    "sklearn-fixed-replicas": {
        "model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"},
        "replicas": 2,
    },
    "onnx-autoscaled-gpu": {
        "model": {"uri": "gs://models/fraud/v8", "version": "v8", "format": "onnx"},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70},
        "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi", "nvidia.com/gpu": 1}},
        "podMetadata": {
            "labels": {"team": "risk", "modeldeploy.io/role": "user-tried-to-override"},
            "annotations": {"owner": "risk@example.com"},
        },
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "fraud-model",
        "rollout": {"progressDeadlineSeconds": 1200},
    },
    # The user's Secret reaches the storage initializer (envFrom), never the model server.
    "s3-with-credentials": {
        "model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn",
                  "credentials": {"secretName": "fraud-model-store"}},
    },
    # spec.model.cache: the claim in the storage initializer only, found through MODELDEPLOY_CACHE_DIR.
    "s3-with-model-cache": {
        "model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn",
                  "credentials": {"secretName": "fraud-model-store"}, "cache": {"claimName": "models-cache"}},
    },
    "pvc-single-replica": {
        "model": {"uri": "pvc://model-store/llm/mistral", "version": "2024-05", "format": "huggingface"},
    },
    # Issue 14's scheduling controls, each as a pod spec has it; the user's
    # topologySpreadConstraints replace the default spread.
    "gpu-scheduling-controls": {
        "model": {"uri": "s3://models/llm/v3", "version": "v3", "format": "huggingface"},
        "replicas": 2,
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                   "values": ["NVIDIA-A100-SXM4-80GB"]}]}]}}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                       "whenUnsatisfiable": "DoNotSchedule",
                                       "labelSelector": {"matchLabels": {"modeldeploy.io/name": "fraud"}}}],
        "priorityClassName": "models-critical",
        "runtimeClassName": "nvidia",
        "imagePullSecrets": [{"name": "registry-credentials"}],
    },
    # Issue 14: an HPA on model metrics (requests per second per pod, a
    # queue's depth, DCGM GPU utilisation) instead of CPU, no CPU request needed...
    "hpa-custom-metrics": {
        "model": {"uri": "s3://models/llm/v3", "version": "v3", "format": "huggingface"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 8, "metrics": [
            {"type": "Pods", "pods": {"metric": {"name": "vllm_requests_per_second"},
                                      "target": {"type": "AverageValue", "averageValue": "20"}}},
            {"type": "External", "external": {"metric": {"name": "queue_depth",
                                                         "selector": {"matchLabels": {"queue": "llm"}}},
                                              "target": {"type": "Value", "value": "100"}}},
            {"type": "Object", "object": {
                "describedObject": {"apiVersion": "v1", "kind": "Service", "name": "fraud"},
                "metric": {"name": "DCGM_FI_DEV_GPU_UTIL"}, "target": {"type": "Value", "value": "80"}}}]},
    },
    # ...and a KEDA ScaledObject in the HPA's place, to zero and back.
    "keda-scale-to-zero": {
        "model": {"uri": "s3://models/llm/v3", "version": "v3", "format": "huggingface"},
        "autoscaling": {"minReplicas": 0, "maxReplicas": 4, "engine": "KEDA", "keda": {
            "pollingInterval": 15, "cooldownPeriod": 600,
            "triggers": [{"type": "prometheus", "metadata": {
                "serverAddress": "http://prometheus.monitoring:9090",
                "query": 'sum(rate(vllm_request_success_total{model_name="fraud"}[1m]))',
                "threshold": "5", "activationThreshold": "0"}}]}},
    },
    "custom-image-recreate": {
        "model": {"uri": "https://example.com/models/fraud.tar.gz", "version": "v9"},
        "runtime": {
            "image": "registry.example.com/fraud-server:1.2.3",
            "port": 9000,
            "readinessPath": "/ready",
            "command": ["/serve"],
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "fraud", "key": "token"}}}],
        },
        "rollout": {"strategy": "Recreate"},
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_steady_state_children(case, runtime_table):
    """What the operator's reconcile plan writes for a new ModelDeployment."""
    children = steady_children(name=OWNER.name, namespace=OWNER.namespace, uid=OWNER.uid, spec=CASES[case],
                               table=runtime_table)
    assert_matches_golden(case, children)


def test_canary_deployment(runtime_table, known_formats):
    spec = parse_spec(CASES["sklearn-fixed-replicas"], known_formats=known_formats)
    assert_matches_golden("canary-deployment", [build_deployment(OWNER, spec, runtime_table, role=Role.CANARY, replicas=1)])
