#!/usr/bin/env python3
"""A cs.packetstream HasPacketConnection service of typed requests, over this
process's stdin/stdout.

The request classes are BaseRequest subclasses of cs.binary
BinaryMultiValue classes, the way cs.packetstream documents them. User
request types:

- 0 AddRequest(hashenum: BSUInt, data: BSData): answers
  (hashenum, BSString("got N bytes")), N the length of data.
- 1 EveryField(n1: UInt8, n2: UInt16BE, i: Int32LE, u: UInt64BE,
  s: BSString, f: BSSFloat, d: BSData, x: Float64BE): answers the bytes of
  Summary(n1: UInt8 = 255 - n1, n2: UInt16BE = n2 ^ 0xffff, i: Int32LE = -i,
  u: UInt64BE = u, s: BSString = s reversed (by code point),
  f: BSSFloat = f, d: BSData = d reversed, x: Float64BE = -x,
  z: BSUInt = the UTF-8 length of s).
- 2 Fail(why: BSString): raises, so cs.packetstream answers ok = 0 with
  "exception during handler".
- 3 Shout(text: BSString): answers text.upper() as a str (sent as UTF-8).
- 4 Flags(): answers the request's flags times 2, as flags.

Any other type fails (KeyError in HasPacketConnection), as does a payload
that does not decode. It serves until the peer's EOF, shuts down in order
and exits 0. Used by tests/interop_rpc.rs. Nothing but packets may reach
fd 1.
"""

import os
import sys
import threading

# cs.packetstream prints progress reports on sys.stdout at shutdown; fd 1 is
# the packet stream, so send everything printed to stderr before any import.
sys.stdout = sys.stderr
# Keep tests/python free of __pycache__ when importing the helper beside us.
sys.dont_write_bytecode = True

WATCHDOG_SECONDS = float(os.environ.get("PACKETSTREAM_TEST_WATCHDOG", "300"))


def watchdog():
    print("typed_service.py: watchdog: still running after %ss, exiting" % WATCHDOG_SECONDS, file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)


def main():
    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()

    # Noisy imports (deprecation chatter on stderr): after the redirect.
    import cs.packetstream
    from cs.binary import (
        BinaryMultiValue,
        BSData,
        BSSFloat,
        BSString,
        BSUInt,
        Float64BE,
        Int32LE,
        UInt8,
        UInt16BE,
        UInt64BE,
    )
    from cs.packetstream import BaseRequest, HasPacketConnection
    from threadsafe_connection import ThreadSafePacketConnection

    # HasPacketConnection makes its PacketConnection by this module-level
    # name; its handlers enter and leave the connection from several
    # threads, which the plain class does not survive (see
    # threadsafe_connection.py). The bytes on the wire are the same.
    cs.packetstream.PacketConnection = ThreadSafePacketConnection

    class AddRequest(BaseRequest, BinaryMultiValue("AddRequest", dict(hashenum=BSUInt, data=BSData))):
        def fulfil(self, context):
            return self.hashenum, bytes(BSString("got %d bytes" % len(self.data)))

    Summary = BinaryMultiValue(
        "Summary",
        dict(n1=UInt8, n2=UInt16BE, i=Int32LE, u=UInt64BE, s=BSString, f=BSSFloat, d=BSData, x=Float64BE, z=BSUInt),
    )

    class EveryField(
        BaseRequest,
        BinaryMultiValue(
            "EveryField",
            dict(n1=UInt8, n2=UInt16BE, i=Int32LE, u=UInt64BE, s=BSString, f=BSSFloat, d=BSData, x=Float64BE),
        ),
    ):
        def fulfil(self, context):
            summary = Summary(
                n1=255 - self.n1,
                n2=self.n2 ^ 0xFFFF,
                i=-self.i,
                u=self.u,
                s=self.s[::-1],
                f=self.f,
                d=bytes(self.d)[::-1],
                x=-self.x,
                z=len(self.s.encode("utf-8")),
            )
            return bytes(summary)

    class Fail(BaseRequest, BinaryMultiValue("Fail", dict(why=BSString))):
        def fulfil(self, context):
            raise RuntimeError("asked to fail: %s" % (self.why,))

    class Shout(BaseRequest, BinaryMultiValue("Shout", dict(text=BSString))):
        def fulfil(self, context):
            return self.text.upper()

    class Flags(BaseRequest, BinaryMultiValue("Flags", dict())):
        def fulfil(self, context):
            return self.flags * 2

    class Service(HasPacketConnection):
        pass

    service = Service(
        (0, 1),
        "typed_service.py",
        rq_type_map={0: AddRequest, 1: EveryField, 2: Fail, 3: Shout, 4: Flags},
        packet_grace=0,
    )
    with service.conn:
        service.conn.join_recv()
    timer.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
