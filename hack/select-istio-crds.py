"""Print only the Istio networking CRDs the operator writes (VirtualService,
DestinationRule) from istio.io/api's generated CRD bundle."""
import sys

import yaml

WANTED = {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"}

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("metadata", {}).get("name") in WANTED]
missing = WANTED - {d["metadata"]["name"] for d in docs}
if missing:
    sys.exit(f"istio CRD bundle lacks {sorted(missing)}")
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
