#!/usr/bin/env python3
"""A TCP proxy that delays every chunk by a fixed time in each direction.

netem is not available on these kernels, so the WAN benchmark adds latency
with this proxy in front of sshd: --delay-ms 20 gives about 40 ms of RTT on
top of the link. Chunks keep their order; the delay is measured from arrival.
"""
import argparse
import asyncio


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def release():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(release())
    while True:
        data = await reader.read(65536)
        loop_time = asyncio.get_running_loop().time()
        await queue.put((loop_time + delay, data if data else None))
        if not data:
            break
    await task


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--delay-ms", type=float, default=20)
    a = ap.parse_args()
    lhost, lport = a.listen.rsplit(":", 1)
    thost, tport = a.target.rsplit(":", 1)
    delay = a.delay_ms / 1000

    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection(thost, int(tport))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, sw, delay), pump(sr, cw, delay), return_exceptions=True)

    server = await asyncio.start_server(handle, lhost, int(lport))
    async with server:
        await server.serve_forever()


asyncio.run(main())
