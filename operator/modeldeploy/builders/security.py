"""Pod Security Standards, profile `restricted` (v1.25+), as the API server's
admission checks a pod: the operator's own pods meet it, and a
podTemplatePatch that would break it is refused in the status with the
reason, before any pod is created (a namespace enforcing `restricted` would
refuse the pods, silently for the Deployment). Pure."""

from typing import Any

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """What in `pod_spec` the `restricted` profile forbids, one line each (empty: none)."""
    found: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            found.append(f"{field}: true")
    pod_security = pod_spec.get("securityContext") or {}
    for sysctl in pod_security.get("sysctls") or ():
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"securityContext.sysctls: {sysctl.get('name')} is not a safe sysctl")
    for volume in pod_spec.get("volumes") or ():
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume.get('name')}: {', '.join(sorted(kinds - ALLOWED_VOLUMES))} volumes are "
                         f"not allowed")
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod_spec.get(group) or ():
            found += [f"container {container.get('name')}: {problem}"
                      for problem in _container_violations(container, pod_security)]
    return found


def _container_violations(container: dict[str, Any], pod_security: dict[str, Any]) -> list[str]:
    security = container.get("securityContext") or {}
    found = []
    if security.get("privileged"):
        found.append("privileged: true")
    if security.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation must be false")
    capabilities = security.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or ()):
        found.append("capabilities.drop must include ALL")
    added = set(capabilities.get("add") or ()) - {"NET_BIND_SERVICE"}
    if added:
        found.append(f"capabilities.add may only be NET_BIND_SERVICE (got {', '.join(sorted(added))})")
    run_as_non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
    if run_as_non_root is not True:
        found.append("runAsNonRoot must be true (here or in the pod's securityContext)")
    if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
        found.append("runAsUser must not be 0")
    seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile.type must be RuntimeDefault or Localhost")
    if security.get("procMount") not in (None, "Default"):
        found.append("procMount must be Default")
    for port in container.get("ports") or ():
        if port.get("hostPort"):
            found.append(f"hostPort {port['hostPort']} is not allowed")
    return found
