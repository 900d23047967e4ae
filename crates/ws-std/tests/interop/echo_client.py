"""Client for the ws-std interop tests (Python `websockets`, sync API).

Usage: echo_client.py URL [--no-deflate] [--close-code N] [--close-reason TEXT]

Connects to URL offering the subprotocol "chat", sends a text and a 150 kB
binary message, checks the echoes, closes with the given code and reason
(default 1000 "python done"), checks that the server's closing frame echoed
both, and prints one line:
"OK protocol=<p> extensions=<e> close_code=<c> close_reason=<r!r>".
Exits non-zero on any mismatch.
"""
import argparse
import sys

from websockets.sync.client import connect


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--no-deflate", action="store_true")
    parser.add_argument("--close-code", type=int, default=1000)
    parser.add_argument("--close-reason", default="python done")
    args = parser.parse_args()
    compression = None if args.no_deflate else "deflate"
    with connect(args.url, subprotocols=["chat"], compression=compression, open_timeout=5,
                 close_timeout=5, max_size=4 << 20) as ws:
        ws.send("hello from python")
        got = ws.recv(timeout=5)
        if got != "hello from python":
            sys.exit(f"text echo mismatch: {got!r}")
        blob = bytes(range(256)) * 600
        ws.send(blob)
        got = ws.recv(timeout=5)
        if got != blob:
            sys.exit(f"binary echo mismatch: {len(got)} bytes")
        ws.close(args.close_code, args.close_reason)
        # What the server's closing frame said (RFC 6455 §7.1.5, §7.1.6).
        if ws.close_code != args.close_code or ws.close_reason != args.close_reason:
            sys.exit(f"close not echoed: got {ws.close_code} {ws.close_reason!r}, "
                     f"sent {args.close_code} {args.close_reason!r}")
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        print(f"OK protocol={ws.subprotocol} extensions={ext} "
              f"close_code={ws.close_code} close_reason={ws.close_reason!r}", flush=True)


if __name__ == "__main__":
    main()
