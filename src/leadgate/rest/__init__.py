"""The /v1 REST mirror of spec/leads-api.md."""
