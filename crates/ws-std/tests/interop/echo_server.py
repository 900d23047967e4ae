"""Echo server for the ws-std interop tests (Python `websockets`, sync API).

Prints its port on the first line of stdout, then serves on 127.0.0.1 until
stdin closes or `--lifetime` seconds pass. Offers the subprotocol "chat" and
permessage-deflate (the library's default). On the path /close it answers the
first message by closing with 4000 "python bye". Elsewhere it echoes, and
answers the client's close with the client's own code and reason (the
library does).
"""
import argparse
import sys
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve


def handler(ws):
    if ws.request.path == "/close":
        ws.recv()
        ws.close(4000, "python bye")
        return
    try:
        for message in ws:
            ws.send(message)
    except ConnectionClosed:
        # A close code other than 1000/1001 ends the loop this way; the
        # library has already echoed the client's code and reason.
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lifetime", type=float, default=30.0)
    args = parser.parse_args()
    with serve(handler, "127.0.0.1", 0, subprotocols=["chat"], max_size=4 << 20) as server:
        print(server.socket.getsockname()[1], flush=True)
        timer = threading.Timer(args.lifetime, server.shutdown)
        timer.daemon = True
        timer.start()

        def stop_on_eof():
            sys.stdin.read()
            server.shutdown()

        threading.Thread(target=stop_on_eof, daemon=True).start()
        server.serve_forever()


if __name__ == "__main__":
    main()
