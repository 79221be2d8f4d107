"""Kaikukortti's developer tools: `kaiku run`, the operator commands, test fixtures.

Depends on kaiku_shared; nothing in kaiku_shared or a service depends on it."""
