"""Test-suite wide fixtures: real servers, a unique namespace, the running system."""

pytest_plugins = ["kaiku_dev.testing"]
