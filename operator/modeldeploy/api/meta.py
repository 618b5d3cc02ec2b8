"""Identity of the ModelDeployment API: group, version, kind and naming limits."""

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md",)
CATEGORIES = ("modeldeploy",)

# The longest child name we reserve is `<name>-canary-<10 hex revision>`
# (18 characters of suffix). Service names are DNS-1035 labels of at most 63
# characters, and the name is also used as a label value (63 max), so the
# ModelDeployment name itself must stay within 63 - 18 = 45 characters.
MAX_NAME_LENGTH = 45

# DNS-1035 label: Services named after the ModelDeployment must start with a letter.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
