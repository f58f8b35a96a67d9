#!/usr/bin/env python3
"""A small HTTPS server for the object-source tests (builder-pod/tests/source_object*.rs).

Usage: https_server.py ROOT CERT KEY LOG
Binds 127.0.0.1 on a free port, prints the port on stdout, and serves:
  /files/NAME           ROOT/NAME, with an ETag (md5 of the bytes) and Last-Modified
  /redirect/NAME        302 to /files/NAME
  /downgrade/NAME       302 to http://…/files/NAME (plain http on the same port)
  /loop/NAME            302 to itself
  /short/NAME           ROOT/NAME with a Content-Length 4096 bytes too long, then EOF
  /basic/NAME           ROOT/NAME behind Basic auth for user "builder" / password "s3cret pw"
  /bearer/NAME          ROOT/NAME behind "Authorization: Bearer tok-123"
  /nohead/NAME          ROOT/NAME, but HEAD answers 405 (as some presigned URLs do)
  /status/CODE          an empty answer with that status
  /gcs/BUCKET/KEY       ROOT/gcs/BUCKET/KEY (a stand-in for the GCS XML API)
  /azure/CONTAINER/BLOB ROOT/azure/CONTAINER/BLOB if the request carries Azure SharedKey auth
Every request is appended to LOG as one JSON line: method, path, headers.
"""
import base64, hashlib, json, os, ssl, sys, threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

ROOT, CERT, KEY, LOG = sys.argv[1:5]
LOCK = threading.Lock()
BASIC = "Basic " + base64.b64encode(b"builder:s3cret pw").decode()
BEARER = "Bearer tok-123"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self):
        headers = {name.lower(): value for name, value in self.headers.items()}
        entry = {"method": self.command, "path": self.path, "headers": headers}
        with LOCK, open(LOG, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def serve_file(self, rel):
        path = os.path.realpath(os.path.join(ROOT, rel))
        if not path.startswith(os.path.realpath(ROOT) + os.sep) or not os.path.isfile(path):
            return self.answer(404, b"not found")
        with open(path, "rb") as f:
            body = f.read()
        stat = os.stat(path)
        self.answer(200, body, [
            ("ETag", '"%s"' % hashlib.md5(body).hexdigest()),
            ("Last-Modified", formatdate(stat.st_mtime, usegmt=True)),
            ("Content-Type", "application/octet-stream"),
        ])

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        # GCS's XML API percent-encodes the whole object name (`dir%2Fctx%2Etar%2Egz`).
        path = unquote(self.path.split("?", 1)[0])
        parts = path.lstrip("/").split("/", 1)
        kind, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        auth = self.headers.get("Authorization", "")
        if kind == "files":
            return self.serve_file(rest)
        if kind == "redirect":
            return self.answer(302, b"", [("Location", "/files/" + rest)])
        if kind == "downgrade":
            return self.answer(302, b"", [("Location", "http://127.0.0.1:%d/files/%s" % (self.server.server_address[1], rest))])
        if kind == "loop":
            return self.answer(302, b"", [("Location", "/loop/" + rest)])
        if kind == "short":
            # Announces more than it sends, then closes: an early EOF (threats §2.6 #37).
            with open(os.path.join(ROOT, rest), "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 4096))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        if kind == "basic":
            if auth != BASIC:
                return self.answer(401, b"", [("WWW-Authenticate", 'Basic realm="test"')])
            return self.serve_file(rest)
        if kind == "bearer":
            if auth != BEARER:
                return self.answer(401, b"", [("WWW-Authenticate", 'Bearer realm="test"')])
            return self.serve_file(rest)
        if kind == "nohead":
            if self.command == "HEAD":
                return self.answer(405)
            return self.serve_file(rest)
        if kind == "status":
            return self.answer(int(rest))
        if kind == "gcs":
            return self.serve_file("gcs/" + rest)
        if kind == "azure":
            dated = self.headers.get("x-ms-date") or self.headers.get("date")
            if not (auth.startswith("SharedKey devaccount:") and dated
                    and self.headers.get("x-ms-version")):
                return self.answer(403, b"AuthenticationFailed")
            # The path after the endpoint is /CONTAINER/BLOB.
            return self.serve_file("azure/" + rest)
        self.answer(404, b"no route")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that stops reading (a size limit hit) is expected, not worth a traceback.
        pass


server = Server(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
