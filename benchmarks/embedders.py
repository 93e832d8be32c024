"""W13 ``memory_recall``, the embedders' part: throughput of :class:`LocalEmbedder` in batches of
32 and one text at a time, and the memory (RSS) that the loaded model adds to a process.

Each embedder is measured in a fresh interpreter (``python -m benchmarks.embedders --child``),
so its RSS is its own: the baseline is taken after ``import belugaflow.memory``, the loaded
figure after the model has embedded a first batch (onnxruntime sizes its buffers then). The
texts are the 200 labelled notes of ``tests/memory/data/notes.jsonl`` (short support notes,
~15 tokens). The int8 model is measured twice: once in an empty cache directory (its first use,
quantizing included), then loaded from it. The packaged export, unquantized, is the baseline.

Target from the issue: >= 200 texts/s batched on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._harness import quantiles

__all__ = ["w13_embedders"]

Record = dict[str, Any]

ROOT = Path(__file__).resolve().parents[1]
NOTES = ROOT / "tests" / "memory" / "data" / "notes.jsonl"
BATCH = 32
TARGET_TEXTS_PER_S = 200.0
MS = 1e6


def w13_embedders(quick: bool) -> list[Record]:
    """Three records per embedder (batched, single, RSS), for the int8 model and the packaged
    export; each measured in its own interpreter."""
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="belugaflow-w13-models-") as cache:
        first_use = _child("int8", cache, quick)  # makes the int8 file: timed, not measured
        for variant in ("int8", "export"):
            found = _child(variant, cache, quick)
            if variant == "int8":
                found["first_use_s"] = first_use["load_s"]
            records.extend(_records(found))
    return records


def _records(found: Record) -> list[Record]:
    common = {
        "workload": "W13",
        "embedder": found["embedder"],
        "threads": found["threads"],
        "load_average_1m": found["load_average_1m"],
    }
    out: list[Record] = []
    for name, key, size in (
        ("embedder_batched", "batched", BATCH),
        ("embedder_single", "single", 1),
    ):
        median, p90 = quantiles(found[key]["ns"], MS)
        rate = found[key]["texts_per_s"]
        record = {
            **common,
            "name": name,
            "median": round(median, 3),
            "p90": round(p90, 3),
            "unit": "ms",
            "reps": len(found[key]["ns"]),
            "batch": size,
            "texts_per_s": round(rate, 1),
        }
        if name == "embedder_batched":
            record.update(target=TARGET_TEXTS_PER_S, meets_target=rate >= TARGET_TEXTS_PER_S)
        out.append(record)
    rss = {
        **common,
        "name": "embedder_rss",
        "median": found["rss_loaded_mib"],
        "unit": "MiB",
        "rss_baseline_mib": found["rss_baseline_mib"],
        "rss_added_mib": round(found["rss_loaded_mib"] - found["rss_baseline_mib"], 1),
        "peak_rss_mib": found["peak_rss_mib"],
        "load_s": round(found["load_s"], 2),
    }
    if "first_use_s" in found:
        rss["first_use_s"] = round(found["first_use_s"], 2)
    out.append(rss)
    return out


def _child(variant: str, cache: str, quick: bool) -> Record:
    """Run the measurement of ``variant`` in a fresh interpreter and read its JSON line."""
    command = [sys.executable, "-m", "benchmarks.embedders", "--child", variant, cache]
    done = subprocess.run(
        [*command, "--quick"] if quick else command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    found: Record = json.loads(done.stdout.strip().splitlines()[-1])
    return found


# -- in the child ----------------------------------------------------------------------------


def _rss_mib() -> float:
    """The resident set size of this process now (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _measure(variant: str, cache: str, quick: bool) -> Record:
    from belugaflow.memory import LocalEmbedder

    texts = [json.loads(line)["text"] for line in NOTES.read_text().splitlines() if line]
    baseline = _rss_mib()
    embedder = LocalEmbedder(quantized=variant == "int8", cache_dir=cache)
    started = time.perf_counter()
    await embedder.load()
    load_s = time.perf_counter() - started
    await embedder.embed(texts[:BATCH])  # first run: onnxruntime sizes its buffers
    loaded = _rss_mib()
    found: Record = {
        "embedder": embedder.name,
        "threads": embedder.threads,
        "rss_baseline_mib": baseline,
        "rss_loaded_mib": loaded,
        "load_s": load_s,
    }
    rounds = 1 if quick else 4
    full = len(texts) - len(texts) % BATCH  # whole batches only: 192 of the 200 notes
    batched = [texts[i : i + BATCH] for i in range(0, full, BATCH)] * rounds
    singles = [[text] for text in texts[: 50 if quick else 200]]
    for key, calls in (("batched", batched), ("single", singles)):
        samples: list[float] = []
        for call in calls:
            begin = time.perf_counter_ns()
            await embedder.embed(call)
            samples.append(time.perf_counter_ns() - begin)
        count = sum(len(call) for call in calls)
        found[key] = {"ns": samples, "texts_per_s": count / (sum(samples) / 1e9)}
    found["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    found["load_average_1m"] = round(os.getloadavg()[0], 2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=("int8", "export"), required=True)
    parser.add_argument("cache")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_measure(args.child, args.cache, args.quick))))


if __name__ == "__main__":
    main()
