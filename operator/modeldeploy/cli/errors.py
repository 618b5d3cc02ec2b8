"""Exit codes of the `modeldeploy` command and the one error type that carries them.

Scripts and CI branch on the code, people read the one line on stderr; so each
code means one kind of trouble, and the message says what to do about it.
"""
from __future__ import annotations

OK = 0
FAILED = 1  # the request was understood but cannot be done (invalid file, nothing to promote, API error)
USAGE = 2  # bad arguments or an unreadable file (argparse uses 2 as well)
NOT_FOUND = 3  # the ModelDeployment (or its CRD) does not exist
NO_CLUSTER = 4  # no kubeconfig, or the API server cannot be reached or refuses our credentials


class CliError(Exception):
    """A failure the user can act on: `lines` go to stderr, `code` is the exit code."""

    def __init__(self, code: int, *lines: str):
        super().__init__("; ".join(lines))
        self.code = code
        self.lines = lines
