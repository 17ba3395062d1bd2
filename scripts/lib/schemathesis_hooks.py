"""Schemathesis hooks for scripts/fuzz-api.sh: a PDF body is sent as the bytes generated for
it (schemathesis has no built-in serializer for application/pdf)."""

import schemathesis

schemathesis.serializer.alias("application/pdf", "application/octet-stream")
