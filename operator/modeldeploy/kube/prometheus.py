"""Answering an analysis plan with Prometheus's HTTP API (/api/v1/query).

Each query must reduce to one number (a scalar, or a vector of one sample,
as `sum(...)` gives). No data is None -- the machine treats it as
inconclusive, never as zero errors. A failed request is an error string,
also inconclusive: an unreachable Prometheus must not pass a canary.
"""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import Executor

from ..rollout import AnalysisPlan, AnalysisResults, MetricResult

TIMEOUT_SECONDS = 5.0


class QueryError(Exception):
    pass


def parse_result(payload: dict) -> float | None:
    """One number from a query response, or None when there is no data. Pure."""
    if payload.get("status") != "success":
        raise QueryError(payload.get("error") or "query failed")
    data = payload.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        value = result[1]
    elif kind == "vector":
        if not result:
            return None
        if len(result) > 1:
            raise QueryError(f"query returned {len(result)} series; aggregate it to one (e.g. sum(...))")
        value = result[0]["value"][1]
    else:
        raise QueryError(f"query returned a {kind}; a scalar or one-sample vector is needed")
    number = float(value)
    return None if number != number else number  # NaN (e.g. 0/0 with no traffic) is no data


def query(address: str, promql: str) -> float | None:
    url = f"{address.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return parse_result(json.loads(response.read()))
    except urllib.error.HTTPError as exc:  # 400 carries Prometheus's own error text
        try:
            return parse_result(json.loads(exc.read()))
        except (ValueError, QueryError) as inner:
            raise QueryError(f"HTTP {exc.code}: {inner}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise QueryError(f"Prometheus at {address} unreachable: {getattr(exc, 'reason', exc)}") from None


def _attempt(address: str, promql: str | None) -> tuple[float | None, str | None]:
    if promql is None:
        return None, None
    try:
        return query(address, promql), None
    except (QueryError, ValueError) as exc:
        return None, str(exc)


async def run_plan(plan: AnalysisPlan, executor: Executor) -> AnalysisResults:
    loop = asyncio.get_running_loop()

    async def ask(promql: str | None):
        return await loop.run_in_executor(executor, _attempt, plan.address, promql)

    metrics = []
    for metric in plan.metrics:
        (value, error), (stable_value, stable_error) = await asyncio.gather(ask(metric.canary), ask(metric.stable))
        metrics.append(MetricResult(metric=metric.metric, value=value, stable_value=stable_value,
                                    error=error or stable_error))
    samples, samples_error = await ask(plan.samples)
    return AnalysisResults(metrics=tuple(metrics), samples=samples, samples_error=samples_error)
