"""Repositories: plain parameterised SQL, every query scoped by organization_id.

Repositories take a connection and never open a transaction: services own transactions.
"""
