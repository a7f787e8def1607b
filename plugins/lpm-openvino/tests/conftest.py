"""The plugin's tests run as a stated CPU, like the core's (tests/conftest.py): nothing here may depend on the host."""

import os

from lpm_zoo.hardware import HOST_IDENTITY_VAR


def pytest_configure(config):
    os.environ.setdefault(HOST_IDENTITY_VAR, "xeon")
