"""Client for the ws-std interop tests (Python `websockets`, sync API).

Connects to the URL given, offering the subprotocol "chat", sends a text and
a 150 kB binary message, checks the echoes, closes with 1000 and prints one
line: "OK protocol=<p> extensions=<e>". Exits non-zero on any mismatch.
"""
import sys

from websockets.sync.client import connect


def main():
    url = sys.argv[1]
    compression = None if "--no-deflate" in sys.argv else "deflate"
    with connect(url, subprotocols=["chat"], compression=compression, open_timeout=5, close_timeout=5,
                 max_size=4 << 20) as ws:
        ws.send("hello from python")
        got = ws.recv(timeout=5)
        if got != "hello from python":
            sys.exit(f"text echo mismatch: {got!r}")
        blob = bytes(range(256)) * 600
        ws.send(blob)
        got = ws.recv(timeout=5)
        if got != blob:
            sys.exit(f"binary echo mismatch: {len(got)} bytes")
        ws.close(1000, "python done")
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        print(f"OK protocol={ws.subprotocol} extensions={ext}", flush=True)


if __name__ == "__main__":
    main()
