"""Condition types and reasons: the one place they are spelled.

Types follow kstatus (https://github.com/kubernetes-sigs/cli-utils/tree/master/pkg/kstatus),
so Argo CD, Flux and `kubectl wait --for=condition=Ready` understand a
ModelDeployment without custom health code:

- Ready        True once the desired revision serves with every replica ready
               and no pod crash-looping.
- Reconciling  True while the operator or the cluster is still converging.
- Stalled      True when convergence cannot happen without a change by a person
               (a bad spec, an image that cannot be pulled, pods that do not get
               ready within spec.rollout.progressDeadlineSeconds, a rollback).
"""

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
TYPES = (READY, RECONCILING, STALLED)

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"

# Ready=True
SERVING = "Serving"

# Converging (Ready=False, Reconciling=True)
CREATING = "Creating"
ROLLING_OUT = "RollingOut"
REPLICAS_NOT_READY = "ReplicasNotReady"
PODS_CRASH_LOOPING = "PodsCrashLooping"
CANARY_IN_PROGRESS = "CanaryInProgress"

# Stuck (Ready=False, Stalled=True); PODS_CRASH_LOOPING too, once past the deadline
INVALID_SPEC = "InvalidSpec"
NAME_CONFLICT = "NameConflict"  # a child's name is held by an object another owner controls
IMAGE_PULL_FAILED = "ImagePullFailed"
CONTAINER_CONFIG_ERROR = "ContainerConfigError"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
ROLLED_BACK = "RolledBack"
# Pods of the revision the scheduler cannot place: for lack of resources
# (its message names an Insufficient resource or too many pods), or for
# another reason it gives (a missing claim, no node matching the selector).
INSUFFICIENT_CAPACITY = "InsufficientCapacity"
UNSCHEDULABLE = "Unschedulable"
# Pods placed on a node, downloading and loading the model (not started yet),
# and pods that did not within the model's loadTimeout.
LOADING_MODEL = "LoadingModel"
# A new revision waiting for a canary slot (--max-concurrent-canaries).
CANARY_QUEUED = "CanaryQueued"
# A new revision while the model is scaled to zero (replicas 0, or KEDA's
# minReplicas 0): its canary starts when the model scales up; no deadline.
WAITING_FOR_SCALE_UP = "WaitingForScaleUp"
CHECK_RUNNING = "CheckRunning"  # a smoke-test Job (spec.rollout.checks) gates the canary
MODEL_LOAD_TIMEOUT = "ModelLoadTimeout"
# Capacity mode Replace: after a promotion (or a canary dropped), the stable
# Deployment takes its pods back from the canary one by one.
RESTORING_STABLE = "RestoringStable"

# A models:/ URI the MLflow registry did not answer for (unreachable, or no
# such version or alias): nothing serving is touched, the read is retried.
REGISTRY_UNAVAILABLE = "RegistryUnavailable"

# The "nothing to report" side of Reconciling and Stalled
RECONCILED = "Reconciled"
NOT_STALLED = "NotStalled"

# Stalled reasons that come from the progress deadline: once set for a
# generation, they stay until the spec changes or the pods recover.
DEADLINE_REASONS = (PROGRESS_DEADLINE_EXCEEDED, PODS_CRASH_LOOPING, INSUFFICIENT_CAPACITY, UNSCHEDULABLE,
                    MODEL_LOAD_TIMEOUT)

# Container waiting reasons, as the kubelet reports them.
IMAGE_PULL_WAITING_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_WAITING_REASONS = ("CreateContainerConfigError", "CreateContainerError")
CRASH_LOOP_WAITING_REASON = "CrashLoopBackOff"

# Deployment condition set by the Deployment controller when progressDeadlineSeconds passes.
DEPLOYMENT_DEADLINE_REASON = "ProgressDeadlineExceeded"
