"""``python -m actorpool``: the same command line as the ``actorpool`` script."""

from __future__ import annotations

from actorpool.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
