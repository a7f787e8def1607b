"""The plugin's tests run as a stated CPU, like the core's (tests/conftest.py): nothing here may depend on the host.
Rows measured so are stated; the tests may fit on them (`LPM_ALLOW_STATED_ROWS=1`, for tests only)."""

import os

from lpm_zoo.hardware import ALLOW_STATED_VAR, HOST_IDENTITY_VAR


def pytest_configure(config):
    os.environ.setdefault(HOST_IDENTITY_VAR, "xeon")
    os.environ.setdefault(ALLOW_STATED_VAR, "1")
