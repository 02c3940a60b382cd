#!/usr/bin/env python3
"""A cs.packetstream server over stdin/stdout that also makes requests of its peer.

Request types:

- 0: echo: answered ok with the request's own flags and payload.
- 1: fails (the handler raises; ok = 0).
- 2: asks the peer back: sends the peer a request of type 0 with the same
  flags and payload, and answers with the peer's (flags, payload); fails if
  the peer failed it.
- 3: asks the peer back with a request of type 1, which the peer must fail;
  answers (0, b"peer failed: " + the peer's failure payload), and fails if
  the peer answered ok.

It serves until the peer's EOF, shuts down in order and exits 0. Used by
tests/interop.rs for requests in both directions on one connection.

Handlers run on several threads and submit requests from there, which
cs.packetstream's submit() does not survive: see threadsafe_connection.py.
"""

import os
import sys
import threading

# cs.packetstream prints progress reports on sys.stdout at shutdown; fd 1 is
# the packet stream.
sys.stdout = sys.stderr
# Keep tests/python free of __pycache__ when importing the helper beside us.
sys.dont_write_bytecode = True

CALLBACK_TIMEOUT = 60.0
WATCHDOG_SECONDS = float(os.environ.get("PACKETSTREAM_TEST_WATCHDOG", "300"))

CONN = None


def watchdog():
    print("bidi_server.py: watchdog: still running after %ss, exiting" % WATCHDOG_SECONDS, file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)


def ask_peer(rq_type, flags, payload):
    """(ok, flags, payload) of a request to the peer, waiting a bounded time."""
    result = CONN.submit(rq_type, flags=flags, payload=payload)
    done = threading.Event()
    result.notify(lambda _result: done.set())
    if not done.wait(CALLBACK_TIMEOUT):
        raise RuntimeError("peer did not answer rq_type %d within %ss" % (rq_type, CALLBACK_TIMEOUT))
    return result()


def handler(rq_type, flags, payload):
    payload = bytes(payload)
    if rq_type == 0:
        return flags, payload
    if rq_type == 2:
        ok, peer_flags, peer_payload = ask_peer(0, flags, payload)
        if not ok:
            raise RuntimeError("peer failed: %r" % (bytes(peer_payload),))
        return peer_flags, bytes(peer_payload)
    if rq_type == 3:
        ok, _peer_flags, peer_payload = ask_peer(1, flags, payload)
        if ok:
            raise RuntimeError("peer answered ok to rq_type 1")
        return 0, b"peer failed: " + bytes(peer_payload)
    raise ValueError("rq_type %d fails" % (rq_type,))


def main():
    global CONN
    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()
    # Noisy import (deprecation chatter on stderr): after the redirect.
    from threadsafe_connection import ThreadSafePacketConnection

    CONN = ThreadSafePacketConnection((0, 1), "bidi_server.py", request_handler=handler, packet_grace=0)
    with CONN:
        CONN.join_recv()
    timer.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
