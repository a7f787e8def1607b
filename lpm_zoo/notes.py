"""Notes to the user (another machine's predictor, a fixed reduction cell, a refit), held until the input is valid.

A command that fails prints exactly one line: a note printed before its input was validated would make
that two. So notes go through `note()`: while the CLI host holds them (`hold`, at the start of a
command), they wait until the command says its input is valid (`release`) or returns, and are dropped
when it fails with a user error (`discard`). Outside a command (library use) a note is a Python warning
(`LpmNote`, a UserWarning), which the caller can filter, log or turn into an error as with any other.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field

from lpm_zoo.errors import printable


class LpmNote(UserWarning):
    """A note of lpm-zoo to a library caller (e.g. a predictor fitted on another CPU than this one)."""


@dataclass
class NoteBuffer:
    """Notes on stderr, each as `lpm COMMAND: note: TEXT`, printed at once or held until `release()`."""

    command: str = ""
    held: bool = False
    pending: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Print `text` as a note, or keep it for `release()` while notes are held; outside a command, warn."""
        text = printable(text)  # a note may quote a file (a zoo entry's hardware): escaped like errors
        if not self.command:  # library use: the caller's warnings filters decide (stack: caller > lpm > note)
            warnings.warn(text, LpmNote, stacklevel=3)
            return
        line = f"lpm {self.command}: note: {text}"
        if self.held:
            if line not in self.pending:  # the same note twice (two loads of one predictor) is said once
                self.pending.append(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def hold(self, command: str) -> None:
        """From now on keep notes back until the command's input is validated."""
        self.command, self.held, self.pending = command, True, []

    def release(self) -> None:
        """The input is valid: print the held notes, and print later ones at once."""
        pending, self.pending, self.held = self.pending, [], False
        for line in pending:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        """The command returned: notes from now on are a library caller's again (warnings, not printed)."""
        self.command, self.held, self.pending = "", False, []

    def discard(self) -> None:
        """The command failed: its held notes are not printed (its error is the one line it prints)."""
        self.pending, self.held = [], False


#: the process's notes: one CLI command runs per process, so this is that command's buffer
NOTES = NoteBuffer()
note = NOTES.note
release = NOTES.release
