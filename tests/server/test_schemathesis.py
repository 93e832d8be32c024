"""``schemathesis`` against the served ``/openapi.json``: generated requests to every route,
valid and invalid ones, find no 5xx and no response that breaks the schema.

Bounded: a few examples per operation and mode, so the file takes seconds. (Its Python API,
driven here by hypothesis: the pytest loader ``from_fixture`` does not work with pytest 9.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.server.conftest import Service

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 15
"""Per operation and generation mode."""


# schemathesis 4.32 draws from the `random` module inside some strategies, which hypothesis
# deprecates with a warning our settings make an error: not a finding about the API.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_api_conforms_to_its_schema(service: Service) -> None:
    """No generated request gets a 5xx or a response its operation does not document."""
    schema = schemathesis.openapi.from_url(f"{service.root}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    tried: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS, timeout=30)

            try:
                check()
            except Unsatisfiable:  # nothing to break: no parameters and no body
                assert mode is GenerationMode.NEGATIVE, operation
                continue
            tried.append(f"{operation.method.upper()} {operation.path} {mode}")
    assert len(tried) > len(operations)
