"""Cut the DNS-challenge providers named in a file out of a copy of lego.

    python3 trim_lego.py LEGO_DIR REMOVED_LIST

lego registers every provider in providers/dns/zz_gen_dns_providers.go: one
import line and one `case "<name>":` / `return <pkg>.NewDNSProvider...` pair
each. Dropping those lines and the providers' folders leaves lego building
without their SDK modules, which the Go module proxy here refuses. Fails if a
listed provider is not found, so a lego bump cannot silently keep one."""
import re
import shutil
import sys
from pathlib import Path

IMPORT = re.compile(r'\s*"github\.com/go-acme/lego/v\d+/providers/dns/([a-z0-9]+)"$')
CASE = re.compile(r"\s*case .*:$")
RETURN = re.compile(r"\s*return ([a-z0-9]+)\.NewDNSProvider")


def main(lego: Path, listing: Path) -> None:
    removed = set(listing.read_text().split())
    registry = lego / "providers" / "dns" / "zz_gen_dns_providers.go"
    lines = registry.read_text().split("\n")
    kept, seen, i = [], set(), 0
    while i < len(lines):
        imported = IMPORT.match(lines[i])
        if imported and imported.group(1) in removed:
            seen.add(imported.group(1))
            i += 1
            continue
        returned = RETURN.match(lines[i + 1]) if CASE.match(lines[i]) and i + 1 < len(lines) else None
        if returned and returned.group(1) in removed:
            i += 2
            continue
        kept.append(lines[i])
        i += 1
    missing = removed - seen
    if missing:
        sys.exit(f"trim_lego: not imported by {registry}: {' '.join(sorted(missing))}")
    registry.write_text("\n".join(kept))
    for name in removed:
        shutil.rmtree(lego / "providers" / "dns" / name)
    # Its table names every provider, the removed ones too.
    (lego / "providers" / "dns" / "dns_providers_test.go").unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
