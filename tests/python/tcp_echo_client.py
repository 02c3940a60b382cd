#!/usr/bin/env python3
"""Talks to an echo server over TCP with the real cs.packetstream.

    python tests/python/tcp_echo_client.py HOST PORT [--idle SECONDS]

Connects a socket to HOST:PORT and runs a cs.packetstream PacketConnection
over its file descriptor (the same fd for reading and writing; see
threadsafe_connection.py for the one work-around), checking:

- requests with varied request types, flags and payloads (up to 1 MiB)
  come back ok with their own flags and payload;
- request type 1 comes back ok = False;
- 200 requests in flight at once;
- with --idle, the connection sits idle that long between two calls (a
  server with a keepalive pings it meanwhile, and cs.packetstream refuses
  the pings) and still works;
- an orderly end: leaving the `with` block sends EOF and waits for the
  server's.

The one line on stdout is a summary starting with "tcp_echo_client.py: ok".
Any mismatch exits 1; a hang is ended by a watchdog (exit 3). Used by
tests/interop.rs.
"""

import os
import random
import socket
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True

# cs.packetstream prints progress reports on sys.stdout at shutdown: keep
# stdout for the summary line alone.
REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr

ANSWER_TIMEOUT = 60.0
WATCHDOG_SECONDS = float(os.environ.get("PACKETSTREAM_TEST_WATCHDOG", "240"))
MAX_ECHO_FLAGS = 2**61 - 1


def log(message):
    print("tcp_echo_client.py: %s" % (message,), file=sys.stderr)
    sys.stderr.flush()


def watchdog():
    log("watchdog: no result after %ss: giving up" % WATCHDOG_SECONDS)
    os._exit(3)


class Mismatch(Exception):
    pass


def wait_result(result, what):
    done = threading.Event()
    result.notify(lambda _result: done.set())
    if not done.wait(ANSWER_TIMEOUT):
        raise Mismatch("%s: no answer within %ss" % (what, ANSWER_TIMEOUT))
    return result()


def check_echo(what, answer, flags, payload):
    ok, got_flags, got_payload = answer
    if not ok:
        raise Mismatch("%s: answered ok=False: %r" % (what, bytes(got_payload[:80])))
    if got_flags != flags or bytes(got_payload) != payload:
        raise Mismatch("%s: flags %r and %d bytes came back as %r and %d bytes"
                       % (what, flags, len(payload), got_flags, len(got_payload)))


def call(conn, rq_type, flags, payload, what):
    return wait_result(conn.submit(rq_type, flags=flags, payload=payload), what)


def main(argv):
    if len(argv) not in (3, 5):
        log("usage: tcp_echo_client.py HOST PORT [--idle SECONDS]")
        return 2
    host, port = argv[1], int(argv[2])
    idle = float(argv[4]) if len(argv) == 5 and argv[3] == "--idle" else 0.0
    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()
    # Noisy import (deprecation chatter on stderr): after the redirect.
    from threadsafe_connection import ThreadSafePacketConnection

    start = time.monotonic()
    rng = random.Random(20240630)
    calls = 0
    sock = socket.create_connection((host, port), timeout=30)
    sock.settimeout(None)
    try:
        fd = sock.fileno()
        conn = ThreadSafePacketConnection((fd, fd), "tcp_echo_client.py", packet_grace=0)
        with conn:
            for rq_type in (0, 2, 7):
                for flags in (0, 1, 137, 2**40, MAX_ECHO_FLAGS):
                    for payload in (b"", b"x", bytes(range(256)), rng.randbytes(64 * 1024)):
                        what = "rq_type=%d flags=%d %dB" % (rq_type, flags, len(payload))
                        check_echo(what, call(conn, rq_type, flags, payload, what), flags, payload)
                        calls += 1
            big = rng.randbytes(1024 * 1024)
            check_echo("1 MiB", call(conn, 0, 3, big, "1 MiB"), 3, big)
            calls += 1
            ok, _, text = call(conn, 1, 5, b"x", "rq_type 1")
            if ok or not text:
                raise Mismatch("rq_type 1 should fail with a text")
            calls += 1
            sent = []
            for i in range(200):
                flags, payload = rng.randrange(0, 2**40), rng.randbytes(rng.randrange(0, 512))
                sent.append((conn.submit(0, flags=flags, payload=payload), flags, payload, i))
            for result, flags, payload, i in sent:
                check_echo("in flight %d" % i, wait_result(result, "in flight %d" % i), flags, payload)
                calls += 1
            if idle:
                time.sleep(idle)
                check_echo("after idling", call(conn, 0, 9, b"after idling", "after idling"), 9, b"after idling")
                calls += 1
        # Leaving the block sent EOF and waited for the server's.
    except Mismatch as e:
        log("FAILED: %s" % (e,))
        return 1
    except Exception:
        log("FAILED with an exception:\n" + traceback.format_exc())
        return 1
    finally:
        sock.close()
    timer.cancel()
    print("tcp_echo_client.py: ok calls=%d seconds=%.2f" % (calls, time.monotonic() - start), file=REAL_STDOUT)
    REAL_STDOUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
