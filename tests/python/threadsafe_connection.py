"""A work-around for a thread-safety bug of cs.packetstream 20240630.

`PacketConnection.submit` enters the connection as a context manager
(`closeall([self])`) and leaves it from the receiver thread when the response
arrives. cs.context's `ContextManagerMixin` keeps the state of each entry in
one instance attribute (`_ContextManagerMixin__state`, pushed and popped with
`pushattrs`/`popattrs`), with no lock. When several threads submit while
responses arrive, those unlocked read-modify-writes race: an exit finds no
state (`AttributeError: ... no attribute '_ContextManagerMixin__state'`), or
runs an entry's exit twice, the open count reaches zero inside the caller's
`with` block, and the connection shuts itself down from its own receiver
thread (`RuntimeError: cannot join current thread`, `ClosedError: already
closed`), leaving requests unanswered. It does not depend on the peer: two
Python connections over a pipe in one process show it within a few runs
under `sys.setswitchinterval(1e-5)`.

`ThreadSafePacketConnection` serialises entering and leaving the connection
with a lock of its own and changes nothing else: the bytes on the wire are
cs.packetstream's.
"""

import threading

from cs.packetstream import PacketConnection


class ThreadSafePacketConnection(PacketConnection):
    """A `PacketConnection` whose context entries and exits do not race."""

    def __init__(self, *args, **kwargs):
        # Per connection: a final exit holds it while the connection shuts
        # down, which may wait for another connection in the same process.
        self._enter_exit_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def __enter__(self):
        with self._enter_exit_lock:
            return super().__enter__()

    def __exit__(self, *exc_info):
        with self._enter_exit_lock:
            return super().__exit__(*exc_info)
