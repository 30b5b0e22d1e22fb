"""The request pool: router, connection actors, supervisor, breakers, health, shape.

May import engine, transport, observe and the public data modules; never logs,
events, streams or the runtime that composes them.
"""

__all__: list[str] = []
