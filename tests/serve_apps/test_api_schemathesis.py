"""Property-based fuzzing of the public API from its own OpenAPI schema (issue #14).

Schemathesis generates valid and invalid requests for every `/v1` operation (examples,
coverage and fuzzing phases per operation, then a stateful run that chains operations through
the schema's links) and sends them in-process to the app the fixtures built on the real
Postgres, Redis and S3-compatible server, with a real API key. Every answer must be a non-5xx
that conforms to the schema (status, content type, headers, body). The model endpoints are left
out: the standalone app answers 503 for them by design. Examples per operation are few, so the
whole file stays within about a minute on a small CI machine.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, SerializationContext
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance
from schemathesis.transport.serialization import serialize_binary

from clipforge.db.pool import Pool
from clipforge.db.repo.api_keys import ApiKey
from clipforge.ratelimit import RateLimiter
from serve_apps.api.app import create_app
from serve_apps.api.deps import ApiDeps

Auth = tuple[ApiKey, dict[str, str]]

_EXCLUDED = r"^/v1/models/"
# Schema-valid requests may still be refused for what a schema cannot say: a source URL that
# does not resolve to a public address, "exactly one of source_url or upload". Every other
# check runs: no 5xx, and status, content type, headers and body as documented.
# `ignored_auth` cannot tell the key this test supplies from a generated one (it then expects
# a 401 for a valid key); enforcement is tested directly in test_api_videos and
# test_api_hardening.
_EXCLUDED_CHECKS = [positive_data_acceptance, ignored_auth]
_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # CI answers the same way on every run; new inputs come with new code
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schemathesis.serializer("video/*", "audio/*")  # type: ignore[arg-type]
def _raw_media(ctx: SerializationContext, value: Any) -> dict[str, Any]:
    # Upload bodies are raw bytes; the generated value is sent as it is.
    return {"data": serialize_binary(value)}


def _authenticate(case: Any, headers: dict[str, str]) -> None:
    # On the case itself (not as call arguments), so the `ignored_auth` check can take the key
    # away again and see the 401.
    case.headers = {**(case.headers or {}), **headers}


@pytest.fixture()
def fuzz_client(api_deps: ApiDeps) -> Iterator[TestClient]:
    """The fixtures' app with a per-key limit out of reach: a 429 mid-sequence would make the
    stateful run's answers differ between Hypothesis' replays (the limit has its own tests)."""
    limiter = RateLimiter(
        api_deps.redis, per_minute=10**6, burst=10**6, prefix=f"cftest:fuzz:{uuid.uuid4().hex}:"
    )
    with TestClient(create_app(dataclasses.replace(api_deps, limiter=limiter))) as client:
        yield client


def _load(client: TestClient) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    # An invalid body too large to read (past the JSON body limit, e.g. more corrections than
    # `maxItems` allows) is refused with 413 before it is parsed: a rejection like a 422.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [
        *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"),
        "5xx",  # schemathesis' default list plus 413; a 5xx still fails `not_a_server_error`
    ]
    return schema.exclude(path_regex=_EXCLUDED)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_within_its_schema(
    fuzz_client: TestClient, owner: Auth, mode: GenerationMode
) -> None:
    # Driven through Hypothesis directly: schemathesis' pytest loader (`from_fixture`) does not
    # run under this pytest, and the app only exists once the session fixtures have built it.
    headers = owner[1]
    for result in _load(fuzz_client).get_all_operations():
        operation = result.ok()

        @_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def answer(case: Any) -> None:
            _authenticate(case, headers)
            case.call_and_validate(excluded_checks=_EXCLUDED_CHECKS)

        try:
            answer()
        except Unsatisfiable:
            # Nothing to negate (an operation without parameters or body): no invalid request.
            assert mode is GenerationMode.NEGATIVE


def test_stateful_sequences_answer_within_the_schema(
    fuzz_client: TestClient, owner: Auth, db: Pool
) -> None:
    machine: Any = _load(fuzz_client).as_state_machine()
    key, headers = owner

    class Authenticated(machine):  # type: ignore[misc]
        def setup(self) -> None:
            # Every sequence starts from the same state. Hypothesis replays sequences and needs
            # the same answers each time; an Idempotency-Key that an earlier sequence used would
            # otherwise replay that sequence's stored answer (naming a video deleted since).
            with db.connection() as conn:
                conn.execute("DELETE FROM idempotency_keys WHERE api_key_id = %s", (key.id,))
                conn.execute("DELETE FROM webhooks WHERE owner_key_id = %s", (key.id,))
                conn.execute("DELETE FROM videos WHERE owner_key_id = %s", (key.id,))

        def before_call(self, case: Any) -> None:
            _authenticate(case, headers)

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=_EXCLUDED_CHECKS,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    run_settings = settings(
        max_examples=25,
        stateful_step_count=6,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    Authenticated.run(settings=run_settings)
