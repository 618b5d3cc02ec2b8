"""The `modeldeploy` command: one module per job.

    main          the parser and the entry point (run, crd, render, status, promote, abort, history)
    commands      what each cluster command does, end to end
    kubeapi       the CLI's access to the cluster: one client, errors as one line and an exit code
    manifests     `render`: the children a ModelDeployment produces, offline
    requests      `promote` / `abort`: may the request be made, and what it will do (pure)
    status_view   `status` / `history`: what the status says, for people (pure)
    errors        exit codes and the one error type
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
