"""A loopback TCP proxy that can stall: the half-open network path of the fault suite and the
soak (a path that stops carrying bytes while both ends still think it is up). It can also hold
back chosen answers of the server (a slow read, as the agent sees it)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class StallProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`stall` stops forwarding in both
    directions without closing a socket (bytes wait in the kernel buffers, TCP stays up, new
    connections are accepted but get no answer), :meth:`resume` lets everything through."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.accepted = 0
        #: (marker, seconds): server answers that contain ``marker`` reach the client that much
        #: later (the marker is best a column name: it comes with every answer, prepared or not)
        self.slow_answers: tuple[bytes, float] | None = None
        threading.Thread(target=self._accept_loop, daemon=True, name="proxy-accept").start()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.append(s)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        while not self._flowing.wait(0.1):
            if self._closed.is_set():
                return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._track(upstream)
        threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()
        self._pump(client, upstream)

    def _hold(self, data: bytes) -> None:
        slow = self.slow_answers
        if slow is not None and slow[0] in data:
            time.sleep(slow[1])

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool = False) -> None:
        try:
            while not self._closed.is_set():
                if not self._flowing.wait(0.1):
                    continue
                readable, _, _ = select.select([src], [], [], 0.1)
                if not readable or not self._flowing.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if answers:
                    self._hold(data)
                dst.sendall(data)
        except (OSError, ValueError):
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()
