"""API clients built from a kubeconfig (or the in-cluster service account)."""
from __future__ import annotations

import os

from kubernetes import client, config

from .. import __version__

USER_AGENT = f"modeldeploy-operator/{__version__}"


def make_api_client(kubeconfig: str | None = None, pool_size: int = 16,
                    user_agent: str = USER_AGENT) -> client.ApiClient:
    """One ApiClient shared by all threads: urllib3's pool is thread-safe, and
    sizing it to the worker count keeps connections reused, not re-handshaken.
    A shard adds itself to the user agent (`modeldeploy-operator/0.1.0 shard
    1/3`), so the API server's audit log tells the shards' writes apart."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        config.load_kube_config(config_file=path, client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    api = client.ApiClient(configuration)
    api.user_agent = user_agent
    return api
