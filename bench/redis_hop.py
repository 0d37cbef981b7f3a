#!/usr/bin/env python3
"""The cost of the Redis hop of a cluster's shared frame: publish by the clock holder, receive by a follower.

    python3 bench/redis_hop.py                  # starts redis-server on a free port (apt-get install redis-server)
    python3 bench/redis_hop.py --frames 5000 --redis redis://127.0.0.1:6379/0

Uses the cluster's own code (streams.cluster: the message encoding and the
MULTI/EXEC a holder sends per frame: PUBLISH, SET state, RPUSH + LTRIM
history) and a follower's pub/sub reader, in one process on one event loop,
so the figures are CPU and loopback time, not network. Reports:

- latency: one frame at a time, from the holder's pipeline to the follower's
  decoded frame (µs per frame; median and p99);
- throughput: frames queued back to back, batched as the holder batches them
  (µs of wall time per frame).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from streams.cluster import MAX_BATCH, decode, encode, frame_of
from streams.sources import JsonFrame

FRAME = JsonFrame(b'{"face":{"yesterdayValue":123456,"name":"x","toadyValue":654321},"id":41}' * 3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def holder_pipeline(client: Redis, messages: list[bytes]):
    """What Cluster._write sends for these frames."""
    pipe = client.pipeline(transaction=True)
    for message in messages:
        pipe.publish("bench:events", message)
        pipe.set("bench:state:ticks", b'{"count":41,"index":0,"state":[41]}')
        pipe.rpush("bench:history:ticks", message)
        pipe.ltrim("bench:history:ticks", -100, -1)
    return pipe


async def measure(url: str, frames: int) -> dict[str, float]:
    holder, follower = Redis.from_url(url), Redis.from_url(url)
    pubsub = follower.pubsub()
    await pubsub.subscribe("bench:events")
    await pubsub.get_message(timeout=1)  # the subscribe confirmation

    async def receive() -> None:
        message = None
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        header, payload = decode(message["data"])
        frame_of(header["k"], payload)

    latencies = []
    for seq in range(frames):
        start = time.perf_counter()
        message = encode({"o": "bench", "v": "frame", "s": "ticks", "n": seq,
                          "p": {"count": seq, "index": 0, "state": [seq]}, "k": "j"}, FRAME.data)
        await holder_pipeline(holder, [message]).execute()
        await receive()
        latencies.append((time.perf_counter() - start) * 1e6)

    start = time.perf_counter()
    messages = [encode({"o": "bench", "v": "frame", "s": "ticks", "n": seq, "p": {"count": seq}, "k": "j"},
                       FRAME.data) for seq in range(frames)]
    for first in range(0, frames, MAX_BATCH):
        await holder_pipeline(holder, messages[first:first + MAX_BATCH]).execute()
    for _ in range(frames):
        await receive()
    batched = (time.perf_counter() - start) * 1e6 / frames

    await pubsub.aclose()
    await holder.aclose()
    await follower.aclose()
    latencies.sort()
    return {"median_us": statistics.median(latencies), "p99_us": latencies[int(len(latencies) * 0.99)],
            "batched_us": batched}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--redis", help="an existing Redis to use (default: start redis-server on a free port)")
    args = parser.parse_args()
    server = None
    url = args.redis
    if url is None:
        if shutil.which("redis-server") is None:
            print("redis-server not found: apt-get install redis-server, or pass --redis URL", file=sys.stderr)
            return 1
        port = free_port()
        folder = tempfile.mkdtemp(prefix="redis-hop-")
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        time.sleep(0.3)
    try:
        result = asyncio.run(measure(url, args.frames))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    print(f"Redis hop per shared frame ({len(FRAME.data)}-byte frame, {args.frames} frames, loopback):")
    print(f"  one at a time   median {result['median_us']:.0f} µs, p99 {result['p99_us']:.0f} µs "
          "(holder's MULTI/EXEC + follower's receive and decode)")
    print(f"  back to back    {result['batched_us']:.1f} µs per frame (batched {MAX_BATCH} per round trip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
