"""Small helpers the bench scripts share."""
import http.client
import json as jsonlib
import urllib.parse


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


class Client:
    """A keep-alive HTTP/1.1 client for the bench's simulated callers: `requests` spends about
    1 ms of CPU a call, which on this 2-core machine is taken from the server under test.
    Real workers and callers run on their own machines; here their cost should be small."""

    def __init__(self, base_url, key, timeout=60):
        parts = urllib.parse.urlsplit(base_url)
        self._connect = lambda: http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self._conn = self._connect()
        self._auth = f"Bearer {key}"

    def call(self, method, path, *, json=None, body=None, headers=None):
        """(status, parsed JSON or raw bytes)."""
        sent = {"Authorization": self._auth, **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self._conn.request(method, path, body=body, headers=sent)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, OSError):  # the server closed an idle keep-alive connection
                self._conn.close()
                self._conn = self._connect()
                if attempt == 2:
                    raise
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, jsonlib.loads(data)
        return response.status, data


def multipart_file(name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body holding one file, and its Content-Type: built once, sent many times."""
    boundary = "benchboundary7d1a"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + f"\r\n--{boundary}--\r\n".encode())
    return body, f"multipart/form-data; boundary={boundary}"
