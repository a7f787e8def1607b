"""Shared test fixtures, and the host identity every test runs as.

Nothing a test asserts may depend on the CPU it runs on. So the suite states a host identity
(`LPM_HOST_IDENTITY`, read by `lpm_zoo.hardware` in this process and in every `lpm` subprocess,
which inherits the environment): `xeon` unless the environment names another, as in
`LPM_HOST_IDENTITY=epyc make test`. Tests about the host itself use the `any_host` fixture (each
named identity in turn) or `real_host` (the identity unset). `make test` then runs the tests marked
`host` once more as each other identity. Rows measured so say they were stated, and `lpm fit` / `adapt`
refuse such rows outside tests: the suite allows them (`LPM_ALLOW_STATED_ROWS=1`).

The suite runs as two pytest-xdist workers on a 2-core runner, and many tests start `lpm` subprocesses:
each worker and each subprocess gets one OpenMP/BLAS thread (`OMP_NUM_THREADS=1`, inherited), because two
busy-waiting thread pools per core made single tests up to 10x slower. A test about threads sets its own.
"""

import os

import pytest
import torch

from lpm_zoo.hardware import ALLOW_STATED_VAR, HOST_IDENTITIES, HOST_IDENTITY_VAR

DEFAULT_HOST = "xeon"


def pytest_configure(config):
    os.environ.setdefault(HOST_IDENTITY_VAR, DEFAULT_HOST)  # before collection: module-level names read it too
    os.environ.setdefault(ALLOW_STATED_VAR, "1")  # the suite fits on what it measured as its stated identity
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for `lpm` subprocesses (torch, BLAS); see the docstring
    torch.set_num_threads(1)  # this worker: torch read the environment when the conftest imported it


@pytest.fixture(params=sorted(HOST_IDENTITIES))
def any_host(request, monkeypatch):
    """Each named host identity in turn (for this process and its subprocesses)."""
    monkeypatch.setenv(HOST_IDENTITY_VAR, request.param)
    return request.param


@pytest.fixture
def real_host(monkeypatch):
    """No stated identity: the fingerprint code reads this machine's own CPU."""
    monkeypatch.delenv(HOST_IDENTITY_VAR, raising=False)


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """The CPU backends set torch's thread count and denormal flushing (process-wide): undo it for other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)
