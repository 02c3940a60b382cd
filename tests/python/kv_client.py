#!/usr/bin/env python3
"""Drives a key-value server (examples/kv_server.rs) with the real
cs.packetstream's typed requests.

    python tests/python/kv_client.py SERVER [ARGS...]

Starts SERVER as a child with piped stdin and stdout and, as a
HasPacketConnection whose request classes are BaseRequest subclasses of
cs.binary BinaryMultiValue classes (user types 0 Put, 1 Get, 2 Delete,
3 List, as kv_server.rs documents them), checks through conn_do_remote:

- Put answers flags 0 for a new key and 1 for a replaced value, with an
  empty payload; Delete flags 1 if the key existed, else 0;
- Get answers the value's bytes; a missing key fails with
  "no such key: KEY", which conn_do_remote raises as ValueError;
- the empty string is a valid key;
- List answers a BSUInt count and that many BSString keys, sorted by
  their UTF-8 bytes, filtered by prefix;
- a payload that does not decode fails with a text that says so;
- an orderly shutdown: leaving the `with` block, closing the child's
  stdin, the child exiting 0.

The one line on stdout is a summary starting with "kv_client.py: ok".
Any mismatch exits 1; a hang is ended by a watchdog (exit 3).

conn_do_remote waits for its answer without a limit (and cs.packetstream
never wakes a caller already waiting when the peer's EOF comes), so every
call here is made and answered before this side closes, and the watchdog
bounds the whole run.
"""

import os
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

# How long the child may take to exit once its stdin is closed.
EXIT_TIMEOUT = 30.0
# How long the one raw request may take.
ANSWER_TIMEOUT = 60.0
WATCHDOG_SECONDS = float(os.environ.get("PACKETSTREAM_TEST_WATCHDOG", "240"))

CHILD = None


def log(message):
    print("kv_client.py: %s" % (message,), file=sys.stderr)
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


def expect(what, got, wanted):
    if got != wanted:
        raise Mismatch("%s: got %r, wanted %r" % (what, got, wanted))


def main(argv):
    global CHILD
    if len(argv) < 2:
        log("usage: kv_client.py SERVER [ARGS...]")
        return 2
    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()

    # Noisy imports (deprecation chatter on stderr): after the redirect.
    import cs.packetstream
    from cs.binary import BinaryMultiValue, BSData, BSString, BSUInt
    from cs.packetstream import BaseRequest, HasPacketConnection
    from threadsafe_connection import ThreadSafePacketConnection

    # HasPacketConnection makes its PacketConnection by this module-level
    # name; the thread-safe one changes nothing on the wire.
    cs.packetstream.PacketConnection = ThreadSafePacketConnection

    def yes_or_no(flags, payload):
        if bytes(payload) != b"" or flags not in (0, 1):
            raise ValueError("not a yes or no: flags=%r payload=%r" % (flags, bytes(payload)))
        return flags == 1

    class Put(BaseRequest, BinaryMultiValue("Put", dict(key=BSString, value=BSData))):
        def fulfil(self, context):
            raise NotImplementedError("the client serves nothing")

        def decode_response_payload(self, flags, payload):
            return yes_or_no(flags, payload)

    class Get(BaseRequest, BinaryMultiValue("Get", dict(key=BSString))):
        def fulfil(self, context):
            raise NotImplementedError("the client serves nothing")

        def decode_response_payload(self, flags, payload):
            if flags != 0:
                raise ValueError("Get answered flags %r" % (flags,))
            return bytes(payload)

    class Delete(BaseRequest, BinaryMultiValue("Delete", dict(key=BSString))):
        def fulfil(self, context):
            raise NotImplementedError("the client serves nothing")

        def decode_response_payload(self, flags, payload):
            return yes_or_no(flags, payload)

    class List(BaseRequest, BinaryMultiValue("List", dict(prefix=BSString))):
        def fulfil(self, context):
            raise NotImplementedError("the client serves nothing")

        def decode_response_payload(self, flags, payload):
            payload = bytes(payload)
            count, offset = BSUInt.parse_value_from_bytes(payload)
            keys = []
            for _ in range(count):
                key, offset = BSString.parse_value_from_bytes(payload, offset)
                keys.append(key)
            if offset != len(payload):
                raise ValueError("List: unparsed data at offset %d" % offset)
            return keys

    class KVClient(HasPacketConnection):
        pass

    start = time.monotonic()
    CHILD = child = subprocess.Popen(argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    counts = dict(put=0, get=0, delete=0, list=0, failed=0)
    try:
        client = KVClient(
            (child.stdout, child.stdin),
            "kv_client.py",
            rq_type_map={0: Put, 1: Get, 2: Delete, 3: List},
            packet_grace=0,
        )
        do = client.conn_do_remote

        def put(key, value):
            counts["put"] += 1
            return do(Put(key=key, value=value))

        def get(key):
            counts["get"] += 1
            return do(Get(key=key))

        def delete(key):
            counts["delete"] += 1
            return do(Delete(key=key))

        def listing(prefix):
            counts["list"] += 1
            return do(List(prefix=prefix))

        # Held open for every call: conn_do_remote enters and leaves the
        # connection itself, which would otherwise close it after each call.
        with client.conn:
            expect("put a", put("a", b"1"), False)
            expect("put a again", put("a", b"2"), True)
            expect("get a", get("a"), b"2")
            try:
                value = get("nope")
                raise Mismatch("get of a missing key answered %r" % (value,))
            except ValueError as e:
                if "no such key: nope" not in str(e):
                    raise Mismatch("get of a missing key: %s" % (e,))
                log("missing key failed as expected: %s" % (e,))
                counts["failed"] += 1
            # The empty key, and an empty value.
            expect("put the empty key", put("", b""), False)
            expect("get the empty key", get(""), b"")
            expect("put the empty key again", put("", b"empty"), True)
            expect("get the empty key again", get(""), b"empty")
            # Keys that sort differently by code point, by UTF-8 and by case.
            keys = ["é", "b", "€", "ab", "A", "\U0001f600", "a\x00", "z", "\uffff"]
            for key in keys:
                expect("put %r" % key, put(key, key.encode("utf-8")), False)
            everything = sorted(["", "a"] + keys, key=lambda k: k.encode("utf-8"))
            expect("list all", listing(""), everything)
            expect("list a", listing("a"), ["a", "a\x00", "ab"])
            expect("list nothing", listing("no such prefix"), [])
            expect("get é", get("é"), "é".encode("utf-8"))
            big = bytes(range(256)) * 4096
            expect("put big", put("big", big), False)
            expect("get big", get("big"), big)
            expect("delete big", delete("big"), True)
            expect("delete big again", delete("big"), False)
            expect("list after delete", listing("bi"), [])
            # A payload that does not decode: the Rust server says what is wrong.
            result = client.conn.submit(0, 0, b"\x03ke")
            done = threading.Event()
            result.notify(lambda _result: done.set())
            if not done.wait(ANSWER_TIMEOUT):
                raise Mismatch("no answer to a garbled Put within %ss" % ANSWER_TIMEOUT)
            ok, flags, payload = result()
            text = bytes(payload).decode("utf-8", errors="replace")
            if ok or not text.startswith("cannot decode kv:put (request type 0): short input"):
                raise Mismatch("garbled Put answered ok=%r flags=%r %r" % (ok, flags, text))
            log("garbled Put failed as expected: %s" % (text,))
            counts["failed"] += 1
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
        "kv_client.py: ok put=%(put)d get=%(get)d delete=%(delete)d list=%(list)d failed=%(failed)d" % counts
        + " server_exit=0 seconds=%.2f" % seconds,
        file=REAL_STDOUT,
    )
    REAL_STDOUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
