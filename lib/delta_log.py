"""Moved to :mod:`lib.delta_io` (the one module for Delta tables); these names remain importable from
here only until their importers are switched (issue #17). New code imports ``lib.delta_io``."""

from lib.delta_io import (
    TableUnreadable,
    add_actions,
    exit_without_teardown,
    is_delta_table,
    last_commit_ms,
    one_line,
    row_count,
)
from lib.delta_io import open_table_or_none as open_table

__all__ = ["TableUnreadable", "add_actions", "exit_without_teardown", "is_delta_table", "last_commit_ms",
           "one_line", "open_table", "row_count"]
