"""A client for the service that reads its contract from ``/openapi.json`` and keeps to it.

Hand this file (with httpx and jsonschema) to a team that wants to call the model from their
own program: ``ServiceClient`` checks each request against the server's published request
schema *before* sending it, so a mistake is explained locally, and checks each answer against
the published response schema, so a server that drifts from its contract is noticed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ContractError(ValueError):
    """A request or an answer does not match the server's ``/openapi.json``."""


def inline_refs(schema: Any, spec: dict) -> Any:
    """``schema`` with every ``{"$ref": "#/..."}`` replaced by what it points to in ``spec``."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            target: Any = spec
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return inline_refs(target, spec)
        return {k: inline_refs(v, spec) for k, v in schema.items()}
    if isinstance(schema, list):
        return [inline_refs(v, spec) for v in schema]
    return schema


# What a broken JSON Schema keyword means, in words (jsonschema's own message quotes the value,
# which for a 1,000-character text is a wall of text).
_WORDS = {
    "minItems": "fewer than {} text(s)",
    "maxItems": "more than {} texts",
    "minLength": "shorter than {} character(s)",
    "maxLength": "longer than {} characters",
    "pattern": "only white space (a text must match the pattern {})",
    "type": "not of type {}",
}


def _first_problem(schema: dict, value: Any) -> str | None:
    """Where ``value`` breaks ``schema`` and how, in words; None when it does not."""
    import jsonschema
    from jsonschema.exceptions import best_match

    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(the body)"
    words = _WORDS.get(error.validator)
    return f"{where}: " + (words.format(error.validator_value) if words else error.message[:150])


class ServiceClient:
    """``predict(texts)`` against a running service, with both ends checked against its contract.

    with ServiceClient("http://127.0.0.1:8000", token=None) as api:
        api.predict(["great crew", "lost my bag"])   # -> list of {"label", "scores", ...}
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers, trust_env=False)
        self.spec = self.http.get("/openapi.json").raise_for_status().json()
        operation = self.spec["paths"]["/predict"]["post"]
        body = operation["requestBody"]
        self.request_schema = inline_refs(body["content"]["application/json"]["schema"], self.spec)
        self.max_body_bytes = body.get("x-max-body-bytes")
        self.response_schemas = {
            status: inline_refs(r["content"]["application/json"]["schema"], self.spec)
            for status, r in operation["responses"].items()
        }
        self.needs_token = bool(operation.get("security"))
        if self.needs_token and not token:
            raise ContractError("this server requires a token (its contract says bearerAuth)")

    def check_request(self, body: dict) -> None:
        """Raise ``ContractError`` naming the first place where ``body`` breaks the contract."""
        problem = _first_problem(self.request_schema, body)
        if problem:
            raise ContractError(f"the server would refuse this request: {problem}")

    def predict(self, texts: str | Sequence[str]) -> list[dict]:
        """One ``{"label", "scores", "truncated"}`` per text, in order."""
        body = {"text": texts if isinstance(texts, str) else list(texts)}
        self.check_request(body)
        r = self.http.post("/predict", json=body)
        schema = self.response_schemas.get(str(r.status_code))
        if schema is None:
            raise ContractError(f"status {r.status_code} is not in the contract: {r.text[:200]}")
        problem = _first_problem(schema, r.json())
        if problem:
            raise ContractError(f"the answer breaks the contract: {problem}")
        if r.status_code != 200:
            error = r.json()
            raise RuntimeError(f"{r.status_code} {error['error']}: {error['message']}")
        return r.json()["predictions"]

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
