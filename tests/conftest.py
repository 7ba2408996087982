"""Shared by every test directory: the session servers (Mosquitto, PostgreSQL) of tests/servers.py."""

pytest_plugins = ["tests.servers"]
