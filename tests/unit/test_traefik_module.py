"""hack/traefik: the wrapper module Traefik is built from (hack/build-traefik.sh)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAEFIK = REPO / "hack" / "traefik"


def pinned(name: str) -> str:
    text = (REPO / "hack" / "versions.sh").read_text()
    return re.search(rf"^{name}=(\S+)$", text, re.M).group(1)


def test_the_module_builds_the_traefik_release_versions_sh_pins_on_the_gateway_api_release_the_cluster_installs():
    mod = (TRAEFIK / "go.mod").read_text()
    assert f"\tgithub.com/traefik/traefik/v3 {pinned('TRAEFIK_VERSION')} " in mod
    # Traefik watches every Gateway API kind of the release it is built on;
    # the cluster must serve that release's CRDs or Traefik never syncs.
    assert f"\tsigs.k8s.io/gateway-api {pinned('GATEWAY_API_VERSION')} " in mod
    assert "tool github.com/traefik/traefik/v3/cmd/traefik" in mod
    # Each replace says why in go.mod; these are the three the build needs.
    for replaced in ("github.com/traefik/traefik/dynamic/ext => ./ext", "github.com/go-acme/lego/v5 => ./lego",
                     "github.com/abbot/go-http-auth => github.com/containous/go-http-auth "):
        assert replaced in mod, replaced


REGISTRY = '''package dns

import (
\t"fmt"

\t"github.com/go-acme/lego/v5/providers/dns/acmedns"
\t"github.com/go-acme/lego/v5/providers/dns/alidns"
\t"github.com/go-acme/lego/v5/providers/dns/route53"
)

func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
\tswitch name {
\tcase "acme-dns", "acmedns":
\t\treturn acmedns.NewDNSProvider()
\tcase "alidns":
\t\treturn alidns.NewDNSProvider()
\tcase "route53":
\t\treturn route53.NewDNSProvider()
\tdefault:
\t\treturn nil, fmt.Errorf("unrecognized DNS provider: %s", name)
\t}
}'''


def fake_lego(root: Path, providers: list[str]) -> Path:
    dns = root / "providers" / "dns"
    for name in providers:
        (dns / name).mkdir(parents=True)
        (dns / name / f"{name}.go").write_text(f"package {name}\n")
    (dns / "zz_gen_dns_providers.go").write_text(REGISTRY)
    (dns / "dns_providers_test.go").write_text("package dns\n")
    return root


def trim(lego: Path, removed: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TRAEFIK / "trim_lego.py"), str(lego), str(removed)],
                          capture_output=True, text=True)


def test_trimming_lego_drops_the_listed_providers_import_case_and_folder_and_keeps_the_others(tmp_path):
    lego = fake_lego(tmp_path / "lego", ["acmedns", "alidns", "route53"])
    (tmp_path / "removed.txt").write_text("alidns\n")
    assert trim(lego, tmp_path / "removed.txt").returncode == 0
    registry = (lego / "providers" / "dns" / "zz_gen_dns_providers.go").read_text()
    assert "alidns" not in registry
    assert registry == REGISTRY.replace('\t"github.com/go-acme/lego/v5/providers/dns/alidns"\n', "").replace(
        '\tcase "alidns":\n\t\treturn alidns.NewDNSProvider()\n', "")
    assert sorted(p.name for p in (lego / "providers" / "dns").iterdir() if p.is_dir()) == ["acmedns", "route53"]
    assert not (lego / "providers" / "dns" / "dns_providers_test.go").exists()


def test_trimming_refuses_a_listed_provider_lego_does_not_register(tmp_path):
    lego = fake_lego(tmp_path / "lego", ["acmedns", "alidns", "route53"])
    (tmp_path / "removed.txt").write_text("alidns\nyandexcloud\n")
    proc = trim(lego, tmp_path / "removed.txt")
    assert proc.returncode != 0
    assert "yandexcloud" in proc.stderr and "alidns" not in proc.stderr.split(":")[-1]
    # Nothing was changed.
    assert (lego / "providers" / "dns" / "zz_gen_dns_providers.go").read_text() == REGISTRY

