"""Saving the config from the TUI: now, or from a thread, never an older state over a newer one.

The TUI writes config.toml when the settings change (at once, so an error can
be shown) and when the session to reopen next time changes (from a thread: it
happens on every switch, and an fsync may take a while on a slow disk). Each
snapshot is taken on the UI thread and numbered; a write whose snapshot is
older than the one on disk is dropped.
"""

from __future__ import annotations

import threading
from pathlib import Path

from glmchat.config import Config, Paths, config_snapshot, write_config_snapshot


class ConfigWriter:
    """Writes config snapshots in the order they were taken."""

    def __init__(self, where: Paths | Path | None = None) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._issued = 0
        self._written = 0

    def snapshot(self, config: Config) -> tuple[int, Path, str]:
        """(ticket, path, text) of the config as it is now (call on the UI thread)."""
        self._issued += 1
        path, text = config_snapshot(config, self._where)
        config.path = path
        return self._issued, path, text

    def write(self, ticket: int, path: Path, text: str) -> bool:
        """Write a snapshot unless a newer one is on disk already.

        Returns:
            True when the file was written.

        Raises:
            ConfigError: the file could not be written.
        """
        with self._lock:
            if ticket < self._written:
                return False
            write_config_snapshot(path, text)
            self._written = ticket
            return True
