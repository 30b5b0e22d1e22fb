"""The ``actorpool`` command line: arguments, commands, terminal output.

Stands above everything else; only :mod:`actorpool.cli.sandbox` imports
:mod:`actorpool.testing` (for ``--sandbox``), and only when asked.
"""

from actorpool.cli.main import main

__all__ = ["main"]
