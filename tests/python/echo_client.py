#!/usr/bin/env python3
"""Drives an echo server (examples/echo_server.rs) with the real cs.packetstream.

    python tests/python/echo_client.py SERVER [ARGS...]

Starts SERVER as a child with piped stdin and stdout and, over a
cs.packetstream PacketConnection on those pipes, checks:

- requests with varied request types, flags (up to the largest a 64-bit
  peer can echo) and payloads (empty to 1 MiB) come back ok with their own
  flags and payload;
- request type 1 comes back ok = False;
- many requests from several Python threads in flight at once;
- an orderly shutdown: leaving the `with` block, closing the child's stdin,
  and the child exiting 0.

The one line on stdout is a summary starting with "echo_client.py: ok".
Any mismatch exits 1; a hang is ended by a watchdog (exit 3). Every wait is
bounded. Used by tests/interop.rs.

The connection is cs.packetstream's PacketConnection with one work-around:
its submit() is not safe to call from several threads at once, see
threadsafe_connection.py.
"""

import os
import random
import subprocess
import sys
import threading
import time
import traceback

# Keep tests/python free of __pycache__ when importing the helper beside us.
sys.dont_write_bytecode = True

# cs.packetstream prints progress reports on sys.stdout at shutdown: keep
# stdout for the summary line alone.
REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr

# How long one answer may take.
ANSWER_TIMEOUT = 60.0
# How long the child may take to exit once its stdin is closed.
EXIT_TIMEOUT = 30.0
# The whole run, including interpreter start and shutdown.
WATCHDOG_SECONDS = float(os.environ.get("PACKETSTREAM_TEST_WATCHDOG", "240"))

FAILING_RQ_TYPE = 1
# The largest flags a peer with 64-bit integers can echo: a response carries
# ((flags << 1) | ok) << 2 in its header.
MAX_ECHO_FLAGS = 2**61 - 1

CHILD = None


def log(message):
    print("echo_client.py: %s" % (message,), file=sys.stderr)
    sys.stderr.flush()


def watchdog():
    log("watchdog: no result after %ss: killing the server and giving up" % WATCHDOG_SECONDS)
    if CHILD is not None:
        try:
            CHILD.kill()
        except OSError:
            pass
    os._exit(3)


class Mismatch(Exception):
    pass


def wait_result(result, what, timeout=ANSWER_TIMEOUT):
    """The (ok, flags, payload) of a cs.result.Result, waiting at most `timeout`."""
    done = threading.Event()
    result.notify(lambda _result: done.set())
    if not done.wait(timeout):
        raise Mismatch("%s: no answer within %ss" % (what, timeout))
    return result()


def check_echo(what, answer, flags, payload):
    ok, got_flags, got_payload = answer
    if not ok:
        raise Mismatch("%s: answered ok=False: flags=%r payload=%r" % (what, got_flags, bytes(got_payload[:80])))
    if got_flags != flags:
        raise Mismatch("%s: flags %r came back as %r" % (what, flags, got_flags))
    if bytes(got_payload) != payload:
        raise Mismatch(
            "%s: payload of %d bytes came back as %d bytes%s"
            % (
                what,
                len(payload),
                len(got_payload),
                "" if len(payload) != len(got_payload) else " (different contents)",
            )
        )


def sequential(conn, rng):
    """Blocking calls over a grid of request types, flags and payloads."""
    flag_values = [0, 1, 15, 137, 2**40, MAX_ECHO_FLAGS]
    payloads = [
        b"",
        b"x",
        b"hello, world",
        bytes(range(256)),
        rng.randbytes(100 * 1024),
    ]
    rq_types = [0, 2, 7, 1000]
    calls = 0
    for rq_type in rq_types:
        for flags in flag_values:
            for payload in payloads:
                what = "call rq_type=%d flags=%d payload=%dB" % (rq_type, flags, len(payload))
                # conn(rq_type, payload, flags) blocks without a limit: use
                # submit and a bounded wait instead.
                answer = wait_result(conn.submit(rq_type, flags=flags, payload=payload), what)
                check_echo(what, answer, flags, payload)
                calls += 1
    # One large payload, in several frames' worth of pipe buffers.
    big = rng.randbytes(1024 * 1024)
    check_echo("1 MiB call", wait_result(conn.submit(0, flags=3, payload=big), "1 MiB call"), 3, big)
    calls += 1
    return calls


def failing(conn):
    """Request type 1 fails: ok=False with the server's text."""
    ok, flags, payload = wait_result(conn.submit(FAILING_RQ_TYPE, flags=5, payload=b"x"), "failing call")
    if ok:
        raise Mismatch("rq_type 1 answered ok=True (flags=%r payload=%r)" % (flags, bytes(payload)))
    text = bytes(payload).decode("utf-8", errors="replace")
    if not text:
        raise Mismatch("rq_type 1 failed with an empty payload")
    log("rq_type 1 failed as expected: flags=%d text=%r" % (flags, text))
    return 1


def pipelined(conn, rng, count):
    """`count` requests submitted before any answer is awaited."""
    sent = []
    for i in range(count):
        flags = rng.randrange(0, 2**48)
        payload = rng.randbytes(rng.randrange(0, 2048))
        sent.append((conn.submit(0, flags=flags, payload=payload), flags, payload, i))
    for result, flags, payload, i in sent:
        what = "pipelined request %d" % i
        check_echo(what, wait_result(result, what), flags, payload)
    return count


def concurrent(conn, threads, per_thread, window):
    """Several threads, each keeping up to `window` requests in flight."""
    errors = []

    def worker(index):
        rng = random.Random(1000 + index)
        in_flight = []
        try:
            for i in range(per_thread):
                flags = rng.randrange(0, 2**32)
                payload = rng.randbytes(rng.randrange(0, 512))
                in_flight.append((conn.submit(0, flags=flags, payload=payload), flags, payload, i))
                if len(in_flight) >= window:
                    result, flags, payload, j = in_flight.pop(0)
                    what = "thread %d request %d" % (index, j)
                    check_echo(what, wait_result(result, what), flags, payload)
            for result, flags, payload, j in in_flight:
                what = "thread %d request %d" % (index, j)
                check_echo(what, wait_result(result, what), flags, payload)
        except Exception as e:  # reported by the main thread
            errors.append("thread %d: %s: %s" % (index, type(e).__name__, e))

    workers = [threading.Thread(target=worker, args=(i,), name="caller-%d" % i) for i in range(threads)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + ANSWER_TIMEOUT * 2
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
        if w.is_alive():
            raise Mismatch("%s still running after %ss" % (w.name, ANSWER_TIMEOUT * 2))
    if errors:
        raise Mismatch("; ".join(errors))
    return threads * per_thread


def main(argv):
    global CHILD
    if len(argv) < 2:
        log("usage: echo_client.py SERVER [ARGS...]")
        return 2
    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()

    # Noisy import (deprecation chatter on stderr): after the redirect.
    from threadsafe_connection import ThreadSafePacketConnection

    start = time.monotonic()
    CHILD = child = subprocess.Popen(argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    rng = random.Random(20240630)
    counts = {}
    try:
        conn = ThreadSafePacketConnection((child.stdout, child.stdin), "echo_client.py", packet_grace=0)
        with conn:
            counts["calls"] = sequential(conn, rng)
            counts["failed"] = failing(conn)
            counts["pipelined"] = pipelined(conn, rng, 500)
            counts["concurrent"] = concurrent(conn, threads=6, per_thread=100, window=16)
        # Leaving the block sent ERQ and EOF and waited for the server's EOF.
        child.stdin.close()
        try:
            status = child.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Mismatch("server still running %ss after its stdin closed" % EXIT_TIMEOUT)
        if status != 0:
            raise Mismatch("server exited with status %d" % status)
        trailing = child.stdout.read()
        if trailing:
            raise Mismatch("server wrote %d bytes after its EOF packet: %r" % (len(trailing), trailing[:80]))
    except Mismatch as e:
        log("FAILED: %s" % (e,))
        child.kill()
        child.wait(EXIT_TIMEOUT)
        return 1
    except Exception:
        log("FAILED with an exception:\n" + traceback.format_exc())
        child.kill()
        child.wait(EXIT_TIMEOUT)
        return 1
    timer.cancel()
    seconds = time.monotonic() - start
    print(
        "echo_client.py: ok calls=%(calls)d failed=%(failed)d pipelined=%(pipelined)d concurrent=%(concurrent)d"
        % counts
        + " server_exit=0 seconds=%.2f" % seconds,
        file=REAL_STDOUT,
    )
    REAL_STDOUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
