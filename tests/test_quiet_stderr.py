"""`lpm_zoo.backends.quiet.quiet_stderr`: a runtime's own stderr (C++ at fd 2, or Python) is hidden while it works and
summarised in one line when it fails (the ExecuTorch backend wraps its loading and lowering in it; executorch
is not installed in the default venv, so the helper is tested here on its own, with real writes to fd 2)."""

from __future__ import annotations

import os
import sys

import pytest

from lpm_zoo.backends.quiet import quiet_stderr
from lpm_zoo.errors import LpmError


def _chatter(n: int) -> None:
    for i in range(n):
        os.write(2, f"[threadpool.cpp:66] Resetting threadpool {i}\n".encode())  # what C++ logging does
    print("a Python warning line", file=sys.stderr)


def test_a_block_that_works_prints_nothing_and_stderr_comes_back(capfd):
    with quiet_stderr("toy runtime"):
        _chatter(12)
    assert capfd.readouterr().err == ""
    os.write(2, b"after\n")
    print("python after", file=sys.stderr, flush=True)
    assert capfd.readouterr().err == "after\npython after\n"


def test_a_failing_block_adds_one_summary_line_to_its_lpm_error(capfd):
    with pytest.raises(LpmError) as e:
        with quiet_stderr("toy runtime"):
            _chatter(3)
            os.write(2, b"[program.cpp:9] the real reason\n")
            raise LpmError("could not load the program")
    assert str(e.value) == ("could not load the program; toy runtime printed 5 line(s) on stderr, the last: "
                            "[program.cpp:9] the real reason")
    assert "\n" not in str(e.value) and capfd.readouterr().err == ""


def test_another_exception_is_reraised_after_one_line_of_ours(capfd):
    with pytest.raises(RuntimeError, match="boom"):
        with quiet_stderr("toy runtime"):
            os.write(2, b"x\n[op.cpp:1] unsupported op\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "lpm: toy runtime printed 2 line(s) on stderr, the last: [op.cpp:1] unsupported op\n"


def test_nothing_hidden_means_nothing_added():
    with pytest.raises(LpmError, match="^plain$"):
        with quiet_stderr("toy runtime"):
            raise LpmError("plain")
