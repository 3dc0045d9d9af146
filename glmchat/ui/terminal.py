"""The terminal under the app: noticing that it went away, and leaving it as it was found.

When a terminal is closed (a window, an SSH connection, a tmux pane), the
kernel hangs the tty up: writes fail with EIO, reads return nothing, and the
session's leader gets SIGHUP. If glmchat is not that leader (a wrapper script
that ignores the signal), no signal comes at all. Textual's driver is not made
for this: its writer thread dies on the first failed write, after which the
app blocks for good on a full output queue, and its input thread spins on the
empty reads. `TerminalDriver` keeps the writer alive, and tells the app
(`TerminalLost`) on the first failed write; `terminal_gone` lets the app ask.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from typing import IO, Any, Callable

from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message


class TerminalLost(Message):
    """The terminal was closed under the app (posted from the driver's writer thread)."""


def terminal_gone(fd: int) -> bool:
    """Whether the terminal on `fd` was hung up (a file or a pipe is never "gone")."""
    import termios

    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] == errno.EIO
    except OSError:
        return False
    return False


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at the null device: the terminal behind them is gone.

    What is still written on the way out (the driver's last sequences, Python's
    own flush of stdout at exit) then goes nowhere instead of failing.
    """
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    try:
        for fd in (0, 1, 2):
            try:
                os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)


class _Output:
    """The file the driver's writer thread writes to; a failed write reports the loss once, and is dropped."""

    def __init__(self, file: IO[str], on_lost: Callable[[], None]) -> None:
        self._file = file
        self._on_lost = on_lost
        self._lost = False
        self._lock = threading.Lock()

    def _failed(self) -> None:
        with self._lock:
            first = not self._lost
            self._lost = True
        if first:
            self._on_lost()

    def write(self, text: str) -> None:
        if self._lost:
            return
        try:
            self._file.write(text)
        except (OSError, ValueError):
            self._failed()

    def flush(self) -> None:
        if self._lost:
            return
        try:
            self._file.flush()
        except (OSError, ValueError):
            self._failed()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return self._file.isatty()


class TerminalDriver(LinuxDriver):
    """Textual's Linux driver, with an output that survives the terminal going away."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # The writer thread writes to `_file`: a failed write would end that thread
        # silently, and the next frames would block the app on its full queue.
        self._file = _Output(self._file, self._report_lost)  # type: ignore[assignment]

    def _report_lost(self) -> None:
        # Called on the writer thread: post_message is safe from any thread.
        self._app.post_message(TerminalLost())

    def hung_up(self) -> bool:
        """Whether the terminal the app runs in was hung up."""
        return self.input_tty and terminal_gone(self.fileno)


_TERMINAL_RESET = (
    "\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l"  # mouse reporting off
    "\x1b[?2004l"  # bracketed paste off
    "\x1b[?7h"  # line wrap on
    "\x1b[<u"  # kitty keyboard protocol off (before leaving the alternate screen)
    "\x1b[?1049l"  # back to the main screen
    "\x1b[?25h"  # cursor shown
    "\x1b[?1004l"  # focus reports off
)
"""What Textual writes when it leaves application mode, for when there is no time to let it."""


def restore_terminal(driver: object) -> None:
    """Leave application mode by hand: the reset sequences, then the terminal modes saved at start.

    Written straight to the file descriptor, not through the driver's writer
    thread, whose queue may be full and which is not waited for.
    """
    stream = sys.__stderr__
    try:
        if stream is not None:
            os.write(stream.fileno(), _TERMINAL_RESET.encode())
    except (OSError, ValueError):
        pass  # no terminal left to restore
    if isinstance(driver, LinuxDriver) and driver.attrs_before is not None:
        import termios

        try:
            termios.tcsetattr(driver.fileno, termios.TCSANOW, driver.attrs_before)
        except (termios.error, OSError):
            pass
