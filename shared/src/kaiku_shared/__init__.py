"""Kaikukortti shared package: contracts and infrastructure, no business rules."""
