"""Hooks for the schema-driven fuzzer (scripts/openapi-check.sh, scripts/schemathesis.toml)."""

import schemathesis

# tus chunks (PATCH /api/v1/uploads/{id}) are raw bytes, sent as such.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
