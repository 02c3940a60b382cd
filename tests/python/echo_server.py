#!/usr/bin/env python3
"""An echo server on the real cs.packetstream, over this process's stdin/stdout.

The same contract as examples/echo_server.rs: every request is answered ok
with its own flags and payload, except request type 1, whose handler raises
(cs.packetstream then answers ok = 0, "exception during handler"). It serves
until the peer's EOF, shuts down in order and exits 0.

    python tests/python/echo_server.py

Used by tests/interop.rs. Nothing but packets may reach fd 1.
"""

import os
import sys
import threading

# cs.packetstream prints progress reports on sys.stdout at shutdown; fd 1 is
# the packet stream, so send everything printed to stderr before any import.
sys.stdout = sys.stderr

FAILING_RQ_TYPE = 1
# A server left behind by a dead parent must not live forever.
WATCHDOG_SECONDS = float(os.environ.get("PACKETSTREAM_TEST_WATCHDOG", "300"))


def watchdog():
    print("echo_server.py: watchdog: still running after %ss, exiting" % WATCHDOG_SECONDS, file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)


def handler(rq_type, flags, payload):
    if rq_type == FAILING_RQ_TYPE:
        raise ValueError("rq_type 1 always fails")
    return flags, bytes(payload)


def main():
    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()
    from cs.packetstream import PacketConnection  # noisy import: after the redirect

    conn = PacketConnection((0, 1), "echo_server.py", request_handler=handler, packet_grace=0)
    with conn:
        conn.join_recv()
    timer.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
