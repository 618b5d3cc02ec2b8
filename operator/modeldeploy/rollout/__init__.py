"""The canary rollout machine (pure): (spec, status, observed, now) -> decision.

Empty for now; the package exists so the import-linter purity contract covers it
from the first line written here.
"""
