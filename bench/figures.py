"""Small helpers the bench scripts share."""
import asyncio
import http.client
import json as jsonlib
import resource
import urllib.parse

from tests.live import process_table


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


class Http1:
    """One keep-alive HTTP/1.1 connection on asyncio, for benches that hold thousands of them in
    one process: requests are prepared bytes (`http_request`), answers are read by Content-Length
    (or chunks), nothing else is parsed."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0  # times connected: more than once when the server closed it meanwhile

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return self

    @property
    def is_open(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def call(self, request: bytes) -> tuple[int, bytes]:
        """(status, body); reconnects once when the server has closed the connection meanwhile."""
        for attempt in (1, 2):
            if not self.is_open:
                await self.open()
            try:
                self.writer.write(request)
                return await self._read_answer()
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _read_answer(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            body = await self.reader.readexactly(int(lower[at + 17 : lower.index(b"\r\n", at + 2)]))
        elif b"\r\ntransfer-encoding: chunked" in lower:
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readuntil(b"\r\n")
            body = b"".join(parts)
        else:
            body = b""
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, body


def http_request(method: str, path: str, *, key: str | None = None, json=None, host="127.0.0.1") -> bytes:
    """An HTTP/1.1 request as bytes, built once and sent many times."""
    body = jsonlib.dumps(json).encode() if json is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if json is not None:
        lines.append("Content-Type: application/json")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's open-files limit (children inherit it) towards `wanted`, up to the hard
    limit; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def server_sockets(port: int) -> tuple[int, int]:
    """(connections to `port` that its server accepted, connections waiting in its listen backlog),
    from /proc/net/tcp: a connection past the server's limit is established by the kernel and
    waits there, unserved."""
    established = backlog = 0
    for line in open("/proc/net/tcp").readlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) != port:
            continue
        if fields[3] == "01":  # ESTABLISHED
            established += 1
        elif fields[3] == "0A":  # LISTEN: the receive queue is the accept queue
            backlog += int(fields[4].split(":")[1], 16)
    return established - backlog, backlog


def process_tree(root_pid: int) -> list[int]:
    """A process and its children (the gunicorn master and its workers)."""
    return [pid for pid, (ppid, _) in process_table().items() if root_pid in (pid, ppid)]


def cpu_seconds_tree(root_pid: int) -> float:
    """CPU used so far by a process and its children (the gunicorn master and its workers)."""
    return sum(cpu for pid, (ppid, cpu) in process_table().items() if root_pid in (pid, ppid))


def rss_bytes_tree(root_pid: int) -> int:
    """Resident memory of a process and its children, from /proc."""
    total = 0
    for pid in process_tree(root_pid):
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def postgres_cpu(database: str | None = None) -> float:
    """CPU used so far by PostgreSQL's processes (alive now: backends that exited are not counted),
    or only by the backends serving `database` (other databases' load on a shared machine left out)."""
    total = 0.0
    for pid, (_, cpu) in process_table().items():
        try:
            if open(f"/proc/{pid}/comm").read().strip() != "postgres":
                continue
            if database is None or f" {database} " in open(f"/proc/{pid}/cmdline").read().replace("\0", " "):
                total += cpu
        except OSError:
            continue
    return total
