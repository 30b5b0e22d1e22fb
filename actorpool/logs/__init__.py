"""Following one container's logs: the log stream actor, its readers, cursors, reconnects.

May import engine, transport, observe and the public data modules; never pool, events or streams.
"""

__all__: list[str] = []
