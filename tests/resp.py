"""A minimal RESP2/RESP3 client that keeps each reply's exact bytes, so
replies of two servers can be compared byte for byte."""

import socket


class Conn:
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send(self, *args):
        self.send_raw(encode(args))

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """Returns (raw_bytes, value); errors come back as Error values."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        raw = line + b"\r\n"
        if kind in (b"+",):
            return raw, rest.decode()
        if kind == b"-":
            return raw, Error(rest.decode())
        if kind in (b":",):
            return raw, int(rest)
        if kind == b",":
            return raw, ("double", rest.decode())
        if kind == b"(":
            return raw, ("bignum", rest.decode())
        if kind == b"#":
            return raw, rest == b"t"
        if kind == b"_":
            return raw, None
        if kind in (b"$", b"=", b"!"):
            n = int(rest)
            if n < 0:
                return raw, None
            data = self._exact(n)
            return raw + data + b"\r\n", data
        if kind in (b"*", b"~", b">", b"%", b"|"):
            n = int(rest)
            if n < 0:
                return raw, None
            items = []
            count = n * 2 if kind in (b"%", b"|") else n
            for _ in range(count):
                r, v = self.read()
                raw += r
                items.append(v)
            return raw, (kind.decode(), items)
        raise ValueError(f"bad reply line {line!r}")


class Error(str):
    pass


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
