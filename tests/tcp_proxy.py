"""A small TCP proxy on loopback that a test controls, to break connections on purpose.

    proxy = TcpProxy(target_port)        # listens on proxy.port, forwards to the target
    proxy.cut_all()                      # every live connection is dropped now
    proxy.refuse(2.0)                    # new connections are refused for 2 s (port closed)
    proxy.refuse(2.0, mode="reset")      # ... or accepted and reset at once
    proxy.cut_after(50_000)              # drop everything once 50 kB more went server → client
    proxy.cut_on(b"UID MOVE", forward=True)  # drop everything when a client chunk holds it
                                             # (forward=True: the server gets it first)

Triggers fire once. Directions: "down" is server → client, "up" is client → server.
Pass-through is the default; `heal()` disarms every trigger and ends a refusal.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Trigger:
    direction: str
    remaining: int | None = None  # bytes before the cut (cut_after)
    pattern: bytes | None = None  # cut when seen (cut_on)
    forward: bool = False  # cut_on: let the chunk through first
    then: Callable[[], None] | None = None  # called after the cut (e.g. refuse for a while)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`, one thread per connection."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._conns: set[tuple[socket.socket, socket.socket]] = set()
        self._triggers: list[_Trigger] = []
        self._refuse_until = 0.0
        self._refuse_mode = "closed"
        self._stop = threading.Event()
        self.accepted = 0
        self.cuts = 0
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    # -- controls ----------------------------------------------------------------------
    def cut_all(self) -> None:
        """Drop every live connection now (both sides see the connection end)."""
        with self._lock:
            conns = list(self._conns)
            self.cuts += 1
        for pair in conns:  # the pump thread of each closes its sockets
            _shutdown(*pair)

    def refuse(self, seconds: float, *, mode: str = "closed") -> None:
        """Refuse new connections for `seconds`: `closed` (ECONNREFUSED) or `reset` (RST)."""
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            self._refuse_mode = mode
            if mode == "closed" and self._listener is not None:
                self._listener.close()  # at once: a connect right after this must fail
                self._listener = None

    def cut_after(self, nbytes: int, *, direction: str = "down",
                  then: Callable[[], None] | None = None) -> None:
        """Cut every connection once `nbytes` more bytes have passed in `direction`."""
        with self._lock:
            self._triggers.append(_Trigger(direction, remaining=nbytes, then=then))

    def cut_on(self, pattern: bytes, *, direction: str = "up", forward: bool = False,
               then: Callable[[], None] | None = None) -> None:
        """Cut every connection when a chunk in `direction` contains `pattern`."""
        with self._lock:
            self._triggers.append(_Trigger(direction, pattern=pattern, forward=forward, then=then))

    def heal(self) -> None:
        """Back to plain pass-through."""
        with self._lock:
            self._triggers.clear()
            self._refuse_until = 0.0
            if self._listener is None:  # at once: a connect right after this must work
                self._listener = self._listen(self.port)

    @property
    def armed(self) -> bool:
        with self._lock:
            return bool(self._triggers)

    def close(self) -> None:
        self._stop.set()
        self.cut_all()
        self._thread.join(5)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- machinery ---------------------------------------------------------------------
    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        return sock

    def _refusing(self) -> tuple[bool, str]:
        with self._lock:
            return time.monotonic() < self._refuse_until, self._refuse_mode

    def _serve(self) -> None:
        while not self._stop.is_set():
            refusing, mode = self._refusing()
            with self._lock:
                if refusing and mode == "closed" and self._listener is not None:
                    self._listener.close()
                    self._listener = None
                if not (refusing and mode == "closed") and self._listener is None:
                    try:
                        self._listener = self._listen(self.port)
                    except OSError:
                        pass
                listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # closed by refuse() meanwhile
                continue
            if self._refusing()[0]:  # refused since we looked: reset
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            with self._lock:
                self._conns.add((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: (upstream, "up"), upstream: (client, "down")}
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 0.5)
                if self._stop.is_set():
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    target, direction = peers[sock]
                    data, cut, after = self._inspect(direction, data)
                    if data:
                        target.sendall(data)
                    if cut:
                        self.cut_all()
                        if after is not None:
                            after()
                        return
        except (OSError, ValueError):  # cut or closed under us
            return
        finally:
            with self._lock:
                self._conns.discard((client, upstream))
            _kill(client, upstream)

    def _inspect(self, direction: str, data: bytes) -> tuple[bytes, bool, Callable[[], None] | None]:
        """What of `data` may pass, and whether a trigger fires on it."""
        with self._lock:
            for trigger in list(self._triggers):
                if trigger.direction != direction:
                    continue
                if trigger.remaining is not None:
                    if len(data) < trigger.remaining:
                        trigger.remaining -= len(data)
                        continue
                    self._triggers.remove(trigger)
                    return data[:trigger.remaining], True, trigger.then
                if trigger.pattern is not None and trigger.pattern in data:
                    self._triggers.remove(trigger)
                    return (data if trigger.forward else b""), True, trigger.then
        return data, False, None


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed or firewalled peer would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _shutdown(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _kill(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass
