"""The `modeldeploy` command.

    modeldeploy run [--namespace NS ...] [--install-crd]   the operator, in the foreground
    modeldeploy crd                                         print the CRD YAML
    modeldeploy render FILE                                 the children a ModelDeployment produces (offline)
    modeldeploy status NAME [-w]                            phase, versions, traffic, step, conditions, decisions
    modeldeploy promote NAME | abort NAME                   skip the remaining steps / roll the canary back
    modeldeploy history NAME                                the revision history

The cluster commands take --kubeconfig (default: $KUBECONFIG, then
~/.kube/config or in-cluster) and -n/--namespace (default: the kubeconfig
context's namespace, else default).

Errors are one line on stderr saying what is wrong and what to do (an invalid
file: one line per problem), never a traceback for a user mistake. Exit codes:

    0  ok (also `status -w` stopped with Ctrl-C)
    1  failed: an invalid file, nothing to promote or abort, an API error
    2  usage: bad arguments, or a file that cannot be read
    3  not found: no such ModelDeployment in the namespace (or no CRD)
    4  no cluster: no kubeconfig, API server unreachable, or credentials refused
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .errors import FAILED, USAGE, CliError

EXIT_USAGE = USAGE
EXIT_FAILED = FAILED


def _cmd_crd(args: argparse.Namespace) -> int:
    from ..crd import render_crd
    from ..runtimes import load_runtime_table

    sys.stdout.write(render_crd(load_runtime_table(args.runtimes).known_formats))
    return 0


def _install_crd(kubeconfig: str | None, runtimes: str | None, timeout: float = 60) -> None:
    """Server-side apply the CRD, then wait until the API server serves the
    kind: the CRD is Established and its group version's discovery lists it.
    Only then does `run` start the operator, so whatever waits for the
    operator to be ready can `kubectl apply` a ModelDeployment at once."""
    import json
    import time

    import yaml

    from ..crd import render_crd
    from ..kube.clients import make_api_client
    from ..runtimes import load_runtime_table

    crd = yaml.safe_load(render_crd(load_runtime_table(runtimes).known_formats))
    name = crd["metadata"]["name"]
    api = make_api_client(kubeconfig)

    def call(method: str, path: str, **kw) -> tuple[int, bytes]:
        request = api.param_serialize(method, path, auth_settings=["BearerToken"],
                                      header_params={"Accept": "application/json", **kw.pop("headers", {})}, **kw)
        response = api.call_api(*request)
        response.read()
        return response.status, response.data

    status, data = call("PATCH", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                        query_params=[("fieldManager", "modeldeploy-operator"), ("force", "true")], body=crd,
                        headers={"Content-Type": "application/apply-patch+yaml"})
    if not 200 <= status <= 299:
        raise RuntimeError(f"installing the CRD failed: HTTP {status}: {data[:300]!r}")

    plural, kind = crd["spec"]["names"]["plural"], crd["spec"]["names"]["kind"]
    group = crd["spec"]["group"]
    served = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]

    def not_yet() -> str:
        """What is still missing, or "" once the API serves the kind."""
        status, data = call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        if status != 200:
            return f"reading the CRD: HTTP {status}"
        conditions = {c["type"]: c for c in (json.loads(data).get("status") or {}).get("conditions") or []}
        established = conditions.get("Established", {})
        if established.get("status") != "True":
            return f"CRD not Established yet ({established.get('reason') or 'no condition'})"
        for version in served:
            status, data = call("GET", f"/apis/{group}/{version}")
            resources = json.loads(data).get("resources", []) if status == 200 else []
            if not any(r.get("name") == plural and r.get("kind") == kind for r in resources):
                return f"{group}/{version} discovery does not list {plural} yet (HTTP {status})"
        return ""

    deadline = time.monotonic() + timeout
    while missing := not_yet():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the CRD {name} was applied but is not served after {timeout:.0f}s: {missing}")
        time.sleep(0.1)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _shard(text: str) -> str:
    """--shard I/N, checked here so a wrong one stops `run` with a usage
    error naming the problem; the controller parses it again from the
    environment (MODELDEPLOY_SHARD, as a StatefulSet's pod sets it)."""
    from ..reconcile.shards import parse_shard

    try:
        return str(parse_shard(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _check_notify_config() -> None:
    """A notification config that cannot be read stops `run` here, with the
    reason; in kopf's startup handler it would be retried for ever."""
    from ..kube.notifier import read_config
    from ..notify import ConfigError
    from ..settings import OperatorSettings

    try:
        read_config(OperatorSettings())
    except (OSError, ConfigError) as exc:
        raise CliError(EXIT_USAGE, *f"notifications: {exc}".splitlines()) from exc


def _cmd_run(args: argparse.Namespace) -> int:
    import kopf

    # The controller reads its settings from the environment (see settings.py),
    # so flags and a Deployment's env configure it the same way.
    if args.runtimes:
        os.environ["MODELDEPLOY_RUNTIME_TABLE"] = args.runtimes
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if args.namespace:
        os.environ["MODELDEPLOY_NAMESPACES"] = ";".join(args.namespace)
    if args.notify_config:
        os.environ["MODELDEPLOY_NOTIFY_CONFIG"] = args.notify_config
    if args.max_concurrent_canaries is not None:
        os.environ["MODELDEPLOY_MAX_CONCURRENT_CANARIES"] = str(args.max_concurrent_canaries)
    if args.shard:
        os.environ["MODELDEPLOY_SHARD"] = args.shard
    _check_notify_config()
    if args.install_crd:
        _install_crd(args.kubeconfig, args.runtimes)
        print("modeldeploy: CRD modeldeployments.modeldeploy.io installed (Established and served)",
              file=sys.stderr)
    from .. import handlers  # noqa: F401  (registers the handlers with kopf)
    from .. import metrics

    if args.metrics_port:
        metrics.serve(args.metrics_port)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if not args.verbose:
        # One line per watch event is noise at INFO; our own modules still log.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=not args.peering,
        peering_name=args.peering or None,
        priority=args.priority,
        liveness_endpoint=args.liveness,
    )
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .manifests import read_file, render
    from ..runtimes import load_runtime_table

    text = read_file(args.file, sys.stdin)
    manifests, notes = render(args.file, text, load_runtime_table(args.runtimes), namespace=args.namespace)
    for note in notes:
        print(f"modeldeploy: {note}", file=sys.stderr)
    sys.stdout.write(manifests)
    return 0


def _on_cluster(args: argparse.Namespace):
    """(cluster, namespace) from --kubeconfig and -n, as kubectl resolves them."""
    from . import kubeapi

    path = kubeapi.kubeconfig_path(args.kubeconfig)
    namespace = args.namespace or kubeapi.default_namespace(path)
    return kubeapi.connect(path), namespace


def _cmd_status(args: argparse.Namespace) -> int:
    from . import commands

    cluster, namespace = _on_cluster(args)
    if args.watch:
        return commands.watch(cluster, namespace, args.name, sys.stdout)
    return commands.status(cluster, namespace, args.name, sys.stdout)


def _cmd_history(args: argparse.Namespace) -> int:
    from . import commands

    cluster, namespace = _on_cluster(args)
    return commands.history(cluster, namespace, args.name, sys.stdout)


def _cmd_request(args: argparse.Namespace) -> int:
    from . import commands

    cluster, namespace = _on_cluster(args)
    return commands.request(cluster, namespace, args.name, args.command, sys.stdout, sys.stderr)


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the ModelDeployment")
    parser.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")


def _add_cli_commands(sub) -> None:
    render = sub.add_parser("render", help="print the child manifests a ModelDeployment file produces (offline)",
                            description="Print, without a cluster, the manifests the operator creates for the "
                                        "ModelDeployment(s) in FILE ('-' reads stdin), fully rolled out.")
    render.add_argument("file", metavar="FILE")
    render.add_argument("-n", "--namespace", help="namespace when the file names none (default: default)")
    render.add_argument("--runtimes", help="runtime table YAML the operator runs with (default: the packaged one)")
    render.set_defaults(func=_cmd_render)

    status = sub.add_parser("status", help="phase, versions, traffic, current step, conditions and decisions")
    _cluster_flags(status)
    status.add_argument("-w", "--watch", action="store_true", help="redraw on every change (Ctrl-C exits)")
    status.set_defaults(func=_cmd_status)

    for action, what in (("promote", "skip the remaining canary steps and promote the canary"),
                         ("abort", "roll the canary in flight back now")):
        request = sub.add_parser(action, help=f"{what} (sets the modeldeploy.io/{action} annotation)")
        _cluster_flags(request)
        request.set_defaults(func=_cmd_request)

    history = sub.add_parser("history", help="the revision history: time, version, revision, uri, result")
    _cluster_flags(history)
    history.set_defaults(func=_cmd_history)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeploy", description="Take a trained model to production.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator in the foreground (Ctrl-C stops it)")
    run.add_argument("-n", "--namespace", action="append", default=[],
                     help="watch only this namespace (repeatable); default: all namespaces")
    run.add_argument("--install-crd", action="store_true",
                     help="server-side apply the CRD and wait until the API serves it, then start")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then in-cluster)")
    run.add_argument("--runtimes", help="runtime table YAML overriding the packaged one")
    run.add_argument("--max-concurrent-canaries", type=_positive, metavar="N",
                     help="at most N canaries in flight at once; the other new revisions wait in line, stable "
                          "serving, their place in the status (default: no limit)")
    run.add_argument("--notify-config", metavar="FILE",
                     help="rollout notification endpoints, YAML or JSON (default: $MODELDEPLOY_NOTIFY_CONFIG; "
                          "see the README's Notifications)")
    run.add_argument("--liveness", help="serve kopf's liveness/progress probe at this URL, "
                                        "e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--metrics-port", type=int, default=int(os.environ.get("MODELDEPLOY_METRICS_PORT", 0)),
                     help="serve Prometheus metrics on this port at /metrics (default: off)")
    run.add_argument("--peering", default="", help="KopfPeering name for standby replicas (default: standalone)")
    run.add_argument("--priority", type=int, default=0, help="peering priority of this replica")
    # argparse checks a string default with `type` too: a bad $MODELDEPLOY_SHARD is refused the same way.
    run.add_argument("--shard", type=_shard, metavar="I/N", default=os.environ.get("MODELDEPLOY_SHARD") or None,
                     help="reconcile only shard I of N (0 <= I < N): the ModelDeployments whose "
                          "sha256(namespace/name) mod N is I; run N replicas, one per shard "
                          "(default: $MODELDEPLOY_SHARD, else all; see the README's Sharding)")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_cmd_run)

    crd = sub.add_parser("crd", help="print the ModelDeployment CRD")
    crd.add_argument("--runtimes", help="runtime table YAML whose formats the CRD accepts")
    crd.set_defaults(func=_cmd_crd)

    _add_cli_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except CliError as error:
        for line in error.lines:
            print(f"modeldeploy: {line}", file=sys.stderr)
        return error.code
    except Exception as exc:  # a user-facing command: one line, not a traceback
        print(f"modeldeploy: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
