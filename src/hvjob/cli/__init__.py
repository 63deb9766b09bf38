"""The ``hvjob`` command line: a thin layer over :mod:`hvjob.jobs` and :mod:`hvjob.fanout`.

:mod:`hvjob.cli.commands` holds the commands and their options, :mod:`hvjob.cli.output` what
they print. Exit status (docs/cli.md): 0 every host ok; 1 some host failed, none unreachable; 3 some
host unreachable; 4 only waits that ran out of time; 2 usage errors; 130 interrupted; 141 output
closed. No traceback reaches the user.
"""

from hvjob.cli.commands import main, run_cli

__all__ = ["main", "run_cli"]
