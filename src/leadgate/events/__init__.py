"""The live pipeline: LISTEN/NOTIFY fan-out and the webhook dispatcher."""
