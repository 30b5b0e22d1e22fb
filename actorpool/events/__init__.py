"""Docker events and FollowContainers: the event stream actor and the follow actor.

May import logs (cursors, stream context) and everything logs may import; never pool or streams.
"""

__all__: list[str] = []
