"""Image origin for scripts/local-run: serves one directory on 127.0.0.1.

The Content-Type of each image is fixed here, because Python 3.11's
`mimetypes` module maps `.webp` only when the machine's /etc/mime.types does,
and the archiver records the type the origin sends.

Usage: origin.py DIRECTORY PORT
"""

import functools
import http.server
import socketserver
import sys

CONTENT_TYPES = {
    ".png": "image/png",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    "": "application/octet-stream",
}


class ImageHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = CONTENT_TYPES


class LoopbackServer(http.server.ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind also calls socket.getfqdn(), a reverse name
        # lookup that the run does not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: origin.py DIRECTORY PORT")
    directory, port = sys.argv[1], int(sys.argv[2])
    handler = functools.partial(ImageHandler, directory=directory)
    with LoopbackServer(("127.0.0.1", port), handler) as server:
        print(f"serving {directory} on http://127.0.0.1:{port}/", file=sys.stderr, flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
