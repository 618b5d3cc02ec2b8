"""API clients built from a kubeconfig (or the in-cluster service account)."""
from __future__ import annotations

import os

from kubernetes import client, config

from .. import __version__

USER_AGENT = f"modeldeploy-operator/{__version__}"


def make_api_client(kubeconfig: str | None = None, pool_size: int = 16) -> client.ApiClient:
    """One ApiClient shared by all threads: urllib3's pool is thread-safe, and
    sizing it to the worker count keeps connections reused, not re-handshaken."""
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
    api.user_agent = USER_AGENT
    return api
