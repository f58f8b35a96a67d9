#!/usr/bin/env python3
"""Creates a container and uploads blobs on an Azurite blob endpoint, signing each request
with Azure SharedKey (the REST API's "Authorize with Shared Key" rules) using only the
standard library.

Usage: azure_setup.py ENDPOINT ACCOUNT KEY CONTAINER NAME=PATH...
ENDPOINT is path-style, e.g. http://127.0.0.1:10000/devstoreaccount1.
"""
import base64, hashlib, hmac, sys, urllib.error, urllib.parse, urllib.request
from email.utils import formatdate

endpoint, account, key, container, uploads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
STANDARD = ["Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type",
            "Date", "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range"]


def send(method, path, query, body=b"", extra=None):
    # urllib adds a Content-Type to any request with a body; set it so it is signed.
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06",
               "Content-Length": str(len(body)), "Content-Type": "application/octet-stream"}
    headers.update(extra or {})
    values = []
    for name in STANDARD:
        value = headers.get(name, "")
        # Since version 2015-02-21 a zero Content-Length is signed as the empty string.
        values.append("" if name == "Content-Length" and value == "0" else value)
    ms = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-ms-"))
    url_path = urllib.parse.urlparse(endpoint).path + path
    resource = "/" + account + url_path
    for name in sorted(query):
        resource += "\n%s:%s" % (name.lower(), query[name])
    to_sign = method + "\n" + "\n".join(values) + "\n" + "".join("%s:%s\n" % kv for kv in ms) + resource
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = "SharedKey %s:%s" % (account, signature)
    url = endpoint + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            assert response.status in (200, 201), response.status
    except urllib.error.HTTPError as e:
        sys.exit("%s %s: %s %s" % (method, url, e.code, e.read()[:500]))


send("PUT", "/" + container, {"restype": "container"})
for upload in uploads:
    name, path = upload.split("=", 1)
    with open(path, "rb") as f:
        send("PUT", "/%s/%s" % (container, name), {}, f.read(), {"x-ms-blob-type": "BlockBlob"})
print("ok")
