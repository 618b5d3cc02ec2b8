"""A real model store for the tests: moto's S3-compatible server
(`moto_server`, PyPI's moto[server]) on a free port, with IAM on, so only the
access key it minted at start reads the bucket, the way a private bucket
behaves. The storage initializer on the real node reaches it with an
endpoint and that key, from a Secret the test writes and names in
spec.model.credentials.

moto and boto3 run in a venv of their own, cached outside the clone like the
control plane's binaries (~/.cache/modeldeploy/model-store-<hash>/), built
from the `model-store` group of pyproject.toml the first time (about 2.5
minutes on 2 cores): botocore requires python-dateutil<3 and the kubernetes
client the operator uses requires >=3, so they cannot share the operator's
venv. The S3 calls go through model_store_client.py under that interpreter.

Pods on the real node reach the host at its address on the node's veth
(NODE_HOST_IP in the cluster's ports file), so the server listens on
0.0.0.0 by default; MODEL_STORE_BIND (or `bind=`) narrows it, e.g. to that
address."""
from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.process import stop_process
from support.tool_venv import group_venv
from support.waiting import wait_until

CLIENT = Path(__file__).with_name("model_store_client.py")
BIND_ENV = "MODEL_STORE_BIND"
REGION = "us-east-1"
# The IAM calls setup() makes before any key exists (create user, policy, key):
# moto enforces signatures from the next request on.
UNAUTHENTICATED_CALLS = 3


def store_venv() -> Path:
    """The model store's venv (the `model-store` group of pyproject.toml)."""
    return group_venv("model-store", "model store", "about 2.5 min")


def free_port(bind: str) -> int:
    with socket.socket() as s:
        s.bind((bind, 0))
        return s.getsockname()[1]


def pod_facing_host(cluster_dir: Path) -> str | None:
    """The host's address on the real node's veth (NODE_HOST_IP in the
    cluster's ports file): where pods on real-0 reach a server on the host.
    None for a cluster without a real node."""
    try:
        lines = (cluster_dir / "ports").read_text().splitlines()
    except OSError:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    return values.get("NODE_HOST_IP")


@dataclass
class ModelStore:
    port: int
    bind: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    python: Path
    log: Path

    @property
    def endpoint(self) -> str:
        """For this process (the host): loopback, unless bound to one other address."""
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "127.0.0.1") else self.bind
        return f"http://{host}:{self.port}"

    def endpoint_for(self, host: str) -> str:
        """For a client that reaches this machine at `host` (a pod: pod_facing_host)."""
        return f"http://{host}:{self.port}"

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}"

    def credentials(self, host: str | None = None) -> dict[str, str]:
        """The storage initializer's variables (kserve-storage's names), as a
        Secret's stringData: the endpoint is plain HTTP, hence http://."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_for(host) if host else self.endpoint,
        }

    def secret(self, name: str, host: str | None = None) -> dict:
        """A Secret for spec.model.credentials.secretName."""
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
                "stringData": self.credentials(host)}

    # -- S3, as the key's owner ---------------------------------------------

    def call(self, op: str, *, key_id: str | None = None, secret: str | None = None, **args) -> dict:
        request = {"endpoint": self.endpoint, "region": REGION, "bucket": self.bucket, "op": op,
                   "key_id": key_id or self.access_key_id, "secret": secret or self.secret_access_key, **args}
        # -I: not tests/support/ first on sys.path, where operator.py would shadow the standard library's.
        proc = subprocess.run([str(self.python), "-I", str(CLIENT)], input=json.dumps(request), capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"model store client ({op}) failed:\n{proc.stderr[-2000:]}"
        return json.loads(proc.stdout)

    def put(self, files: dict[str, Path]) -> None:
        """Upload local files: {object key: path}."""
        answer = self.call("put", files={key: str(path) for key, path in files.items()})
        assert "error" not in answer, answer

    def get(self, key: str, **auth) -> bytes:
        answer = self.call("get", key=key, **auth)
        if "error" in answer:
            raise PermissionError(answer["error"]) if answer["error"] in DENIED else FileNotFoundError(answer)
        return base64.b64decode(answer["data"])

    def keys(self, prefix: str = "") -> list[str]:
        answer = self.call("list", prefix=prefix)
        assert "error" not in answer, answer
        return answer["keys"]


DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if with an error
    except OSError:
        return False


@contextmanager
def running_model_store(workdir: Path, *, bind: str | None = None, bucket: str = "models"):
    """moto_server on a free port of `bind` (default $MODEL_STORE_BIND or
    0.0.0.0) with one bucket and one access key; yields a ModelStore."""
    bind = bind or os.environ.get(BIND_ENV, "0.0.0.0")
    venv = store_venv()
    port = free_port(bind)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(UNAUTHENTICATED_CALLS)}
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(venv / "bin" / "moto_server"), "-H", bind, "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        store = ModelStore(port=port, bind=bind, bucket=bucket, access_key_id="", secret_access_key="",
                           python=venv / "bin" / "python", log=log_path)
        # A TCP connection, then one HTTP answer that is not an AWS action
        # (it would spend one of the unauthenticated calls setup needs).
        wait_until(lambda: proc.poll() is None and _answers(f"{store.endpoint}/moto-api/data.json"), timeout=30,
                   what=f"moto_server on {bind}:{port}",
                   describe=lambda: (proc.poll(), log_path.read_text()[-1500:]))
        # Anything signs the unauthenticated calls; moto checks none of them.
        keys = store.call("setup", key_id="setup", secret="setup", user=f"models-{secrets.token_hex(3)}")
        assert "error" not in keys, (keys, log_path.read_text()[-1500:])
        store.access_key_id, store.secret_access_key = keys["key_id"], keys["secret"]
        yield store
    finally:
        stop_process(proc)


# -- What goes into the store --------------------------------------------------

def train_sklearn_model(directory: Path, *, variant: int = 1, features_used: int = 4):
    """A small scikit-learn classifier on the iris data scikit-learn ships,
    saved as `model.joblib` in `directory` (what MLServer's sklearn runtime
    loads). Variant 2 learns shifted labels, so its predictions differ from
    variant 1's on the same input. `features_used` < 4 trains on the first
    columns only: such a model loads, but refuses every 4-feature request (a
    model that answers with errors). Returns (model, sample inputs of all 4
    features)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    features, labels = load_iris(return_X_y=True)
    if variant != 1:
        labels = (labels + variant - 1) % 3
    # A tree: deterministic with a seed, and no numerical solver between versions.
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features[:, :features_used], labels)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / "model.joblib")
    return model, features[::15]
