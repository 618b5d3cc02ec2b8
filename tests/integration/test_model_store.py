"""The tests' model store (support/model_store.py): a real S3-compatible
server that holds a trained model and hands it back only to the key it
minted, the way a private bucket behaves for the storage initializer."""
from __future__ import annotations

import pytest

from support.model_store import DENIED, pod_facing_host, train_sklearn_model


def test_a_trained_model_goes_in_and_comes_back_byte_for_byte(model_store, tmp_path):
    model, sample = train_sklearn_model(tmp_path / "v1")
    other, _ = train_sklearn_model(tmp_path / "v2", variant=2)
    assert list(model.predict(sample)) != list(other.predict(sample))  # v2 answers differently

    model_store.put({"fraud/v1/model.joblib": tmp_path / "v1" / "model.joblib",
                     "fraud/v2/model.joblib": tmp_path / "v2" / "model.joblib"})
    assert model_store.keys("fraud/") == ["fraud/v1/model.joblib", "fraud/v2/model.joblib"]
    assert model_store.get("fraud/v1/model.joblib") == (tmp_path / "v1" / "model.joblib").read_bytes()
    assert model_store.uri("fraud/v1/") == f"s3://{model_store.bucket}/fraud/v1"


def test_only_the_minted_key_reads_the_bucket(model_store, tmp_path):
    (tmp_path / "blob").write_bytes(b"weights")
    model_store.put({"private/blob": tmp_path / "blob"})
    assert model_store.get("private/blob") == b"weights"
    for key_id, secret in [("AKIAUNKNOWN", "x"), (model_store.access_key_id, "not-the-secret")]:
        with pytest.raises(PermissionError) as refused:
            model_store.get("private/blob", key_id=key_id, secret=secret)
        assert str(refused.value) in DENIED


def test_the_secret_carries_what_the_storage_initializer_reads(model_store):
    secret = model_store.secret("model-store", host="10.199.0.1")
    assert secret["metadata"]["name"] == "model-store"
    assert secret["stringData"] == {
        "AWS_ACCESS_KEY_ID": model_store.access_key_id,
        "AWS_SECRET_ACCESS_KEY": model_store.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://10.199.0.1:{model_store.port}",
    }


def test_pods_reach_the_host_at_the_node_veth_address(tmp_path):
    assert pod_facing_host(tmp_path) is None
    (tmp_path / "ports").write_text("APISERVER_PORT=6443\nNODE_HOST_IP=10.199.3.1\nNODE_IP=10.199.3.2\n")
    assert pod_facing_host(tmp_path) == "10.199.3.1"
