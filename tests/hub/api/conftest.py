"""Fixtures for API tests (helpers live in apitest.py)."""
