"""Fixtures for the scale tests: the engine tests' fast CPU training config, shared."""

from tests.engine.conftest import cpu_train  # noqa: F401
