"""Hooks for the schema-driven fuzzer (scripts/openapi-check.sh, scripts/schemathesis.toml)."""

import json
import os
import urllib.request

import schemathesis

# tus chunks (PATCH /api/v1/uploads/{id}) are raw bytes, sent as such.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


# The fuzzer is the demo admin. It may legitimately end its own token (rotating and retiring the
# signing key does), so it signs in again every few seconds instead of holding one token.
@schemathesis.auth(refresh_interval=3)
class DemoAdmin:
    def get(self, case, ctx):
        req = urllib.request.Request(
            os.environ["BANGBAN_ST_BASE"] + "/api/v1/auth/login",
            data=json.dumps({"username": "admin", "password": "bangban-demo"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["access_token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
