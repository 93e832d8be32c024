"""Profile one workload with cProfile: where the time goes, by function.

Usage: ``python -m benchmarks.profile W4 [--top 15]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
from collections.abc import Callable

from belugaflow import Orchestrator

from . import workloads as w


def _w1() -> Callable[[], object]:
    chain = w.build_chain10(Orchestrator())
    return lambda: [chain.invoke({"counter": 0}) for _ in range(20_000)]


def _w2() -> Callable[[], object]:
    graph = w.build_order5(Orchestrator())
    return lambda: [graph.invoke({"order_id": "1"}) for _ in range(20_000)]


def _w3() -> Callable[[], object]:
    graph = w.build_fanout100(Orchestrator(), 100)

    async def runs() -> None:
        for _ in range(50):
            await graph.ainvoke({})

    return lambda: asyncio.run(runs())


def _w4() -> Callable[[], object]:
    graph = w.build_layered(Orchestrator()).compile()
    return lambda: [graph.invoke({}) for _ in range(100)]


def _w4_compile() -> Callable[[], object]:
    return lambda: w.build_layered(Orchestrator()).compile()


TARGETS: dict[str, Callable[[], Callable[[], object]]] = {
    "W1": _w1,
    "W2": _w2,
    "W3": _w3,
    "W4": _w4,
    "W4-compile": _w4_compile,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("workload", choices=sorted(TARGETS))
    parser.add_argument("--top", type=int, default=15, help="functions to list")
    args = parser.parse_args(argv)
    run = TARGETS[args.workload]()
    run()  # warm up
    profiler = cProfile.Profile()
    profiler.runcall(run)
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
