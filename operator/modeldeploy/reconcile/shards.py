"""Which ModelDeployments a replica reconciles when the work is split
(`modeldeploy run --shard I/N`). Pure.

A ModelDeployment belongs to shard sha256("namespace/name") mod N: the same
answer in every process and on every machine (Python's hash() of a string is
salted per process, so two replicas would disagree), and close to an even
split for any set of names. The key never changes for the life of an object,
so a model never moves between shards while N stays the same; changing N
moves about (N-1)/N of them, which is harmless as long as every replica is
restarted with the new N (each acts only on what it then owns).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


def shard_of(namespace: str, name: str, count: int) -> int:
    """The shard (0..count-1) the ModelDeployment namespace/name belongs to."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, key: tuple[str, str]) -> bool:
        """Is the ModelDeployment (namespace, name) this shard's to reconcile?"""
        return shard_of(key[0], key[1], self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """"I/N" -> Shard(I, N), with 0 <= I < N. ValueError saying what is
    wrong otherwise (the CLI prints it as a usage error)."""
    index, sep, count = (text or "").strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"expected I/N, e.g. 0/3 (shard I of N, counted from 0), got {text!r}")
    i, n = int(index), int(count)
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, got {text!r}")
    if i >= n:
        raise ValueError(f"shard index {i} out of range for {n} shards: use 0 to {n - 1} (got {text!r})")
    return Shard(i, n)
