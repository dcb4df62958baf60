"""Capillary's error bodies, in the dialect of the API a path belongs to, as its published samples print them
(``doc_samples``). Every refusal the emulator makes up (validation, auth, injected faults) goes through here, so a
path never answers in another API's dialect, nor in two at once.
"""

from __future__ import annotations

from typing import Any

TOKEN_PATH = "/v3/oauth/token/generate"
REWARDS_PREFIX = "/api_gateway/rewards/"


def v11_status(code: int, message: str) -> dict[str, Any]:
    """v1.1 ``response.status`` of a refusal, as ``v11_customer_get__all_failed_500.json`` prints it."""
    return {"response": {"status": {"success": "false", "code": code, "message": message}}}


def v2_errors(code: int, message: str) -> dict[str, Any]:
    """v2 ``errors[]``, as ``v2_error__customer_not_found.json`` prints it."""
    return {"errors": [{"status": False, "code": code, "message": message}], "warnings": []}


def error_body(path: str, code: int, message: str) -> dict[str, Any]:
    """A refusal of a request to ``path`` in that API's dialect."""
    if path == TOKEN_PATH:  # v3_oauth_token_generate__invalid_key.json
        return {"data": None, "errors": [{"code": code, "message": message}]}
    if path.startswith("/v1.1/"):
        return v11_status(code, message)
    if path.startswith(REWARDS_PREFIX):  # rewards_error__400.json
        return {"status": {"success": False, "code": code, "message": message}}
    return v2_errors(code, message)


def token_refused_body(path: str, code: int, message: str) -> dict[str, Any]:
    """A refused OAuth token (401) or an expired one (498). v1.1 answers as the authorization-flow page prints it
    (``v11_envelope__invalid_token.txt``, ``__token_expired.txt``: a string code, ``"success": "true"``,
    ``"customers": null``), as JSON: the page's curly quotes and missing brace are served only by the
    ``envelopes`` fault. Other APIs answer in their own dialect."""
    if path.startswith("/v1.1/"):
        return {"response": {"status": {"success": "true", "code": str(code), "message": message}, "customers": None}}
    return error_body(path, code, message)
