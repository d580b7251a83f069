"""Use cases. Services validate, own the transaction, and are the only place that decides."""
