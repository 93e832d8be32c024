"""The sample orders ``belugaflow up`` sends through the REST API, with plain HTTP (urllib).

They are the order example's (``examples/order_processing``): the graph ``order-processing``,
and its ``await_review`` wait for a ``review`` signal. Each order id is fixed, so running the
samples again against the same shop database finds each order's reservation, payment and
shipment instead of taking more stock: each order ends the same way every time.

Two of them show the example's memory: a reviewer rejects ``UP-1005`` (two ice picks), and
``UP-1006`` (one ice pick, same tier), started once the others are done, recalls that
rejection and waits for a reviewer where the rule alone would approve it; its result line
names what was recalled. The memory keeps what earlier rounds saved, so a later round's lines
name more recalled orders (and ``UP-1005`` itself is then sent to review by the decision).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "REVIEW_SIGNAL",
    "SAMPLES",
    "SAMPLE_GRAPH",
    "SHOP_DB_ENV",
    "Sample",
    "SampleError",
    "submit_samples",
]

SAMPLE_GRAPH = "order-processing"
"""The workflow type the samples start: the order example's graph, served by name."""
REVIEW_SIGNAL = "review"
"""The signal the graph's ``await_review`` wait takes."""
SHOP_DB_ENV = "BELUGAFLOW_ORDERS_DB"
"""The variable that names the order example's shop database (see its ``app.py``)."""

_API = "/api/v1"
_RESULT_WAIT = 30  # seconds of one long poll
_DEADLINE = 120.0  # seconds for all samples to finish
_REVIEW_DEADLINE = 60.0  # seconds for the review sample to reach its wait
_HTTP_TIMEOUT = _RESULT_WAIT + 10.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample order."""

    label: str
    """What it shows: ``in stock``, ``out of stock``, ``needs review``."""
    input: dict[str, Any]
    """The graph's input (``OrderInput`` of the example)."""
    review: dict[str, Any] | None = None
    """The reviewer's verdict to send while the run waits for one; None: it needs none."""
    yours: bool = False
    """Left waiting for a person to review: on the run page, or from the shell."""
    later: bool = False
    """Started once every other sample has finished (it recalls what they left in memory)."""

    @property
    def order_id(self) -> str:
        """The order's id."""
        return str(self.input["order_id"])


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "in stock",
        {"order_id": "UP-1001", "product_id": "prod-1", "quantity": 2, "customer_tier": "gold"},
    ),
    Sample("out of stock", {"order_id": "UP-1002", "product_id": "prod-3", "quantity": 1}),
    # The rule sends a new customer's first order to a reviewer.
    Sample(
        "needs review",
        {"order_id": "UP-1003", "product_id": "prod-1", "quantity": 1, "customer_tier": "new"},
        review={"verdict": "approve", "note": "approved through the REST API by belugaflow up"},
    ),
    Sample(
        "for you",
        {"order_id": "UP-1004", "product_id": "prod-1", "quantity": 1, "customer_tier": "new"},
        yours=True,
    ),
    # Over its review_threshold (50 USD): a reviewer sees it, and rejects the pattern.
    Sample(
        "rejected",
        {"order_id": "UP-1005", "product_id": "prod-2", "quantity": 2, "review_threshold": 5000},
        review={"verdict": "reject", "note": "ice picks in pairs: a resale pattern"},
    ),
    # 45 USD, under every limit: only the recalled rejection sends it to a reviewer.
    Sample(
        "like UP-1005",
        {"order_id": "UP-1006", "product_id": "prod-2", "quantity": 1},
        review={"verdict": "reject", "note": "the same pattern as UP-1005"},
        later=True,
    ),
)
"""In stock, out of stock, one that waits for a reviewer (whom ``up`` plays), one left
waiting for the person at the keyboard, one the reviewer rejects, and a similar one that the
memory of that rejection sends to the reviewer."""


class SampleError(Exception):
    """A sample could not be submitted or did not finish; the message says which and why."""


@dataclass
class _Run:
    sample: Sample
    id: str
    result: dict[str, Any] | None = None
    finished: bool = False


def submit_samples(
    api: str, *, run: str, echo: Callable[[str], None], samples: tuple[Sample, ...] = SAMPLES
) -> dict[str, str]:
    """Start ``samples`` through the API at ``api`` (``http://host:port``), send the verdict
    of each that waits for a reviewer through the API, and print each result with ``echo``;
    the ones left for a person are followed until they wait for their review. The ``later``
    ones start once the others have finished.

    Args:
        api: The API's base URL.
        run: Makes this round's workflow ids unique (``up-<order id>-<run>``).
        echo: Prints one line.
        samples: The orders.

    Returns:
        The workflow id of each order, by order id.

    Raises:
        SampleError: A request failed, or a run did not finish in time.
    """
    start_url = f"{api}{_API}/workflows"
    echo(f"Sample orders, through the REST API (POST {start_url}):")
    deadline = time.monotonic() + _DEADLINE
    ids: dict[str, str] = {}
    for later in (False, True):
        runs = [
            _start(start_url, sample, f"up-{sample.order_id}-{run}", echo)
            for sample in samples
            if sample.later == later
        ]
        for item in runs:
            if item.sample.review is not None or item.sample.yours:
                _review(api, item, echo)
        for item in runs:
            while not item.finished and not item.sample.yours:
                if time.monotonic() > deadline:
                    raise SampleError(f"{item.sample.order_id} ({item.id}) did not finish in time")
                _poll(api, item, _RESULT_WAIT)
            if not item.sample.yours:
                echo(_describe(item))
        ids |= {item.sample.order_id: item.id for item in runs}
    return ids


def _start(url: str, sample: Sample, id: str, echo: Callable[[str], None]) -> _Run:
    body = {"type": SAMPLE_GRAPH, "input": sample.input, "id": id}
    status, answer = _request("POST", url, body)
    if status not in (200, 201):  # 200: a run with this id existed
        raise SampleError(f"starting {sample.order_id}: HTTP {status}: {_brief(answer)}")
    run_id = answer.get("run_id", "?") if isinstance(answer, dict) else "?"
    echo(f"  {sample.order_id}  {sample.label:<12}  started {id} (run {run_id})")
    return _Run(sample, id)


def _review(api: str, item: _Run, echo: Callable[[str], None]) -> None:
    """Once the run waits for the review signal (its ``progress`` query says so), send the
    sample's verdict, or say that it waits for the person."""
    url = f"{api}{_API}/workflows/{item.id}/queries/progress"
    deadline = time.monotonic() + _REVIEW_DEADLINE
    while True:
        status, answer = _request("GET", url)
        if status == 200:
            progress = answer.get("result") if isinstance(answer, dict) else None
            progress = progress if isinstance(progress, dict) else {}
            waits = [
                wait
                for wait in progress.get("waiting", [])
                if isinstance(wait, dict) and wait.get("signal") == REVIEW_SIGNAL
            ]
            if waits:
                node = waits[0].get("node", "?")
                break
            if progress.get("status") in ("completed", "failed", "cancelled"):
                echo(f"  {item.sample.order_id}  finished without a review")
                return
        elif status not in (409, 503):  # 409/503: no answer yet (first task, worker starting)
            raise SampleError(
                f"the progress of {item.sample.order_id}: HTTP {status}: {_brief(answer)}"
            )
        if time.monotonic() > deadline:
            raise SampleError(f"{item.sample.order_id} did not reach its review in time")
        time.sleep(0.1)
    if item.sample.yours:
        echo(f"  {item.sample.order_id}  waits in {node!r} for you to review it (below)")
        return
    url = f"{api}{_API}/workflows/{item.id}/signals/{REVIEW_SIGNAL}"
    review = item.sample.review or {}
    doing = "approving" if review.get("verdict") == "approve" else "rejecting"
    echo(f"  {item.sample.order_id}  waits in {node!r} for a reviewer: {doing} (POST {url})")
    status, answer = _request("POST", url, review)
    if status != 202:
        raise SampleError(f"{doing} {item.sample.order_id}: HTTP {status}: {_brief(answer)}")


def _poll(api: str, item: _Run, wait: int) -> None:
    url = f"{api}{_API}/workflows/{item.id}/result?wait={wait}"
    status, answer = _request("GET", url)
    if status == 202:
        return
    if status != 200:
        raise SampleError(f"the result of {item.sample.order_id}: HTTP {status}: {_brief(answer)}")
    item.finished = True
    item.result = _result_of(answer)


def _result_of(answer: Any) -> dict[str, Any]:
    """The run's final state, whether the API sends it bare or under ``result``."""
    if isinstance(answer, dict):
        inner = answer.get("result")
        if isinstance(inner, dict):
            return inner
        return answer
    return {"result": answer}


def _describe(item: _Run) -> str:
    state = item.result or {}
    status = state.get("status", "?")
    message = state.get("message")
    line = f"  {item.sample.order_id}  => {status}"
    line = f"{line}: {message}" if message else line
    decision = state.get("decision")
    if isinstance(decision, dict):  # the example's decide node: who decided, and what
        by = f"{decision.get('provider')}:{decision.get('model')}"
        by += " (fallback)" if decision.get("fallback_used") else ""
        line += f"; decided {decision.get('action')} by {by}"
        recalled = decision.get("recalled")
        if isinstance(recalled, list) and recalled:  # what the example's memory recalled
            past = ", ".join(_recalled(found) for found in recalled)
            line += f"; recalled {past}"
    return line


def _recalled(found: Any) -> str:
    """A recalled past order: ``UP-1005 rejected (similarity 0.96)``."""
    if not isinstance(found, dict):
        return str(found)
    score = found.get("score")
    shown = f" (similarity {score:.2f})" if isinstance(score, int | float) else ""
    return f"{found.get('order_id')} {found.get('outcome')}{shown}"


def _request(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """Send one JSON request; the status and the decoded answer (text if not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())
    except (urllib.error.URLError, OSError) as error:
        raise SampleError(f"{method} {url}: {error}") from error


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _brief(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("detail") or answer.get("title") or answer)
    return str(answer)[:300]
