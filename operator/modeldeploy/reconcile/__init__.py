"""The reconcile as one pure step: plan(world) -> Plan.

The controller observes (watch cache), plans (here), writes (kube layer) and
reports; every decision lives here or below. No kopf, no kubernetes client.
"""
