#!/usr/bin/env python3
"""tcp_relay.py LISTEN_PORT TARGET_PORT: a TCP relay on 127.0.0.1 for the integration tests.

Each connection to LISTEN_PORT gets its own to TARGET_PORT; bytes flow both ways; when either
side ends, both do. Prints "relay listening" once it accepts. A test freezes it with SIGSTOP
to stand for a cut WAN link (nothing carried, the sockets still open) and thaws it with
SIGCONT.
"""
import asyncio
import sys


async def pipe(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()


async def handle(cr, cw):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))


async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("relay listening", flush=True)
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
