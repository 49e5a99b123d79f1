"""A TCP delay line for the benchmark: `python bench/latency_proxy.py LISTEN_PORT TARGET_HOST:PORT DELAY_MS`.

Every byte is forwarded DELAY_MS after it arrived, in each direction, so a request/response pair
costs 2 x DELAY_MS more round trip (what a database on another host costs an application: the
seed reaches MongoDB Atlas over the internet). A delay line, not a per-chunk sleep: data in flight
is not serialised behind earlier chunks, so throughput is limited by round trips, not by the proxy.
Binds 127.0.0.1 only. A bench tool: nothing in txnmon runs through it.
"""

from __future__ import annotations

import queue
import socket
import sys
import threading
import time

# threads and time.sleep, not asyncio: the event loop waits in whole milliseconds (epoll), which
# would turn 0.5 ms into 1 ms each way


def _pump(src: socket.socket, dst: socket.socket, delay_s: float) -> None:
    line: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def deliver() -> None:
        try:
            while data := (item := line.get())[1]:
                wait = item[0] - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    threading.Thread(target=deliver, daemon=True).start()
    try:
        while data := src.recv(1 << 16):
            line.put((time.monotonic() + delay_s, data))
    except OSError:
        pass
    line.put((0.0, b""))


def _serve(listen_port: int, host: str, port: int, delay_s: float) -> None:
    server = socket.create_server(("127.0.0.1", listen_port))
    print(f"latency proxy 127.0.0.1:{listen_port} -> {host}:{port}, +{delay_s * 1000:.2f} ms each way", flush=True)
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection((host, port))
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_pump, args=(a, b, delay_s), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    listen, target, delay_ms = argv
    host, _, port = target.rpartition(":")
    _serve(int(listen), host or "127.0.0.1", int(port), float(delay_ms) / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
