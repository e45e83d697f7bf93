"""Helpers the tests share (importable as `support`: pyproject sets pytest's pythonpath to tests/).

Fixtures built on them are in tests/conftest.py; plain functions and classes that tests call live here.
"""
