"""Open gRPC connections and why they went, read from grpc core's channelz.

grpc core enforces the idle and age limits itself and tells Python nothing about the
connections it closes. Channelz (on by default in grpc core; the ``grpc.enable_channelz``
channel argument) keeps a node per server socket with counters of streams and messages. A
daemon thread samples it every ``interval_s``:

- it lists the server's sockets (one cheap call), sets
  ``primer_open_connections{protocol="grpc"}`` to their number, and remembers when it first
  saw each (a socket's **age** is counted from then: channelz records no creation time);
- it reads the counters of at most ``MAX_DETAILS_PER_SAMPLE`` sockets, the least recently
  read first; a socket whose counters moved, or with a call in flight, was **active** then;
- a socket that is no longer listed was closed, and is counted in
  ``primer_connections_closed_total{protocol="grpc", limit=...}``:
  ``max_age`` when its age reached 90 % of ``grpc_max_connection_age_s`` (grpc core jitters
  the age by ±10 %) less the slack; else ``max_idle`` when it was not seen active for
  ``grpc_max_connection_idle_s`` less the slack; else ``client_or_other``.

The slack is one sample interval, plus the time between the socket's last two counter reads
(activity is only known to lie between reads). So a client that hangs up on its own within
that slack of a limit is counted under the limit, and ``client_or_other`` also holds ping
strike GOAWAYs and errors. Connections refused past ``grpc_max_connections`` are closed before
channelz lists them and are not counted. Reading goes through ``grpc._cython.cygrpc``'s
channelz functions, the ones grpcio-channelz's servicer wraps, parsed with ``json``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from grpc._cython import cygrpc

from service.metrics import Metrics

logger = logging.getLogger(__name__)

PROTOCOL = "grpc"
LIMITS = ("max_age", "max_idle", "client_or_other")
"""Values of the ``limit`` label of ``primer_connections_closed_total`` for gRPC."""
MAX_DETAILS_PER_SAMPLE = 256
"""Most sockets whose counters are read per sample (~70 µs each): bounds the sampler's cost
at ~2 % of a core however many connections are open."""
AGE_JITTER = 0.9
"""grpc core closes a connection at ``max_connection_age`` times 0.9 to 1.1."""
_COUNTERS = ("streamsStarted", "streamsSucceeded", "streamsFailed", "messagesSent")
_COUNTERS += ("messagesReceived",)


def channelz_server_ids() -> set[int]:
    """Ids of every gRPC server of this process that channelz tracks."""
    ids: set[int] = set()
    start = 0
    while True:
        page = json.loads(cygrpc.channelz_get_servers(start))
        refs = [int(server["ref"]["serverId"]) for server in page.get("server", ())]
        ids.update(refs)
        if page.get("end", True) or not refs:
            return ids
        start = max(refs) + 1


def channelz_socket_ids(server_id: int) -> list[int]:
    """Ids of a server's open connections (empty once the server is gone)."""
    ids: list[int] = []
    start = 0
    while True:
        try:
            page = json.loads(cygrpc.channelz_get_server_sockets(server_id, start, 0))
        except ValueError:  # the server is gone
            return ids
        refs = [int(ref["socketId"]) for ref in page.get("socketRef", ())]
        ids.extend(refs)
        if page.get("end", True) or not refs:
            return ids
        start = max(refs) + 1


def socket_counters(socket_id: int) -> tuple[int, ...] | None:
    """A socket's stream and message counters, or None when it is gone."""
    try:
        data = json.loads(cygrpc.channelz_get_socket(socket_id))["socket"].get("data", {})
    except (ValueError, KeyError):
        return None
    return tuple(int(data.get(name, 0)) for name in _COUNTERS)


@dataclass
class TrackedSocket:
    """What the sampler knows of one connection (times on ``time.monotonic``)."""

    first_seen: float
    last_active: float
    read_at: float = float("-inf")
    read_gap: float = 0.0
    counters: tuple[int, ...] | None = None

    def observe(self, counters: tuple[int, ...], now: float) -> None:
        """Record a read of the counters: active if they moved or a call is in flight."""
        in_flight = counters[0] > counters[1] + counters[2]
        if in_flight or (self.counters is not None and counters != self.counters):
            self.last_active = now
        elif self.counters is None and counters[0] > 0:
            self.last_active = now  # calls happened before the first read
        self.read_gap = 0.0 if self.read_at == float("-inf") else now - self.read_at
        self.read_at, self.counters = now, counters


def attribute(
    socket: TrackedSocket, now: float, idle_s: float, age_s: float, slack_s: float
) -> str:
    """The limit a connection found gone at ``now`` is counted under (module docstring)."""
    if now - socket.first_seen >= AGE_JITTER * age_s - slack_s:
        return "max_age"
    if now - socket.last_active >= idle_s - slack_s - socket.read_gap:
        return "max_idle"
    return "client_or_other"


class GrpcConnectionSampler:
    """Samples one server's channelz sockets into the connection metrics (module docstring).

    Args:
        server_id: the server's channelz id.
        idle_s: ``grpc_max_connection_idle_s``.
        age_s: ``grpc_max_connection_age_s``.
        metrics: where the gauge and the counters live.
        interval_s: time between samples.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        server_id: int,
        idle_s: float,
        age_s: float,
        metrics: Metrics,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server_id = server_id
        self._idle_s, self._age_s, self._interval_s = idle_s, age_s, interval_s
        self._clock = clock
        self._open = metrics.open_connections.labels(PROTOCOL)
        self._closed = {
            limit: metrics.connections_closed.labels(PROTOCOL, limit) for limit in LIMITS
        }
        self._sockets: dict[int, TrackedSocket] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """One pass: list the sockets, read some counters, count the ones that went."""
        now = self._clock()
        listed = channelz_socket_ids(self.server_id)
        self._open.set(len(listed))
        sockets = self._sockets
        for socket_id in listed:
            if socket_id not in sockets:
                sockets[socket_id] = TrackedSocket(first_seen=now, last_active=now)
        gone = sockets.keys() - set(listed)
        slack = self._interval_s
        for socket_id in gone:
            socket = sockets.pop(socket_id)
            self._closed[attribute(socket, now, self._idle_s, self._age_s, slack)].inc()
        oldest_read = sorted(sockets.items(), key=lambda item: item[1].read_at)
        for socket_id, socket in oldest_read[:MAX_DETAILS_PER_SAMPLE]:
            counters = socket_counters(socket_id)
            if counters is not None:
                socket.observe(counters, now)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.sample()
            except Exception:  # a sampler bug must not take the server down
                logger.exception("gRPC connection sampling failed; it stops")
                return

    def start(self) -> None:
        """Sample in a daemon thread until ``stop``."""
        self.sample()
        self._thread = threading.Thread(target=self._run, name="grpc-connections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (before the server stops: its drain's closes are not limits')."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def server_stopped(self) -> None:
        """The server is gone, and so are its connections."""
        self._open.set(0)
        self._sockets.clear()
