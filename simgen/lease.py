"""One writer per corpus store: a lease object kept inside the store.

The lease is a small JSON object ``simgen.lease.json`` at the store's root holding the writer's user, host, pid,
a random token, its start time and a heartbeat (seconds since the epoch) that a background thread renews.  It
works on a local directory and on any fsspec filesystem (object stores included):

* a second writer finds the lease and is refused with who holds it;
* a lease is *stale* when its heartbeat is older than ``stale_after`` seconds, or when its pid is dead on this
  very host; a stale lease is taken over with a message;
* the holder checks at each renewal that the lease still carries its token, so a writer whose lease was taken
  over (after it stalled for longer than ``stale_after``) stops instead of writing on.

On a local filesystem the lease is created with ``O_CREAT | O_EXCL`` (atomic).  Object stores have no portable
create-if-absent, so there the lease is written, read back after a short pause and kept only if it still holds
our token (last writer wins, and the loser notices).

``stale_after`` defaults to :data:`DEFAULT_STALE_S`, or the ``SIMGEN_LEASE_STALE_S`` environment variable.
"""
from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass

from .errors import StoreError

__all__ = ["Lease", "LeaseInfo", "LEASE_NAME", "DEFAULT_STALE_S", "read_lease", "stale_after_default"]

LEASE_NAME = "simgen.lease.json"
DEFAULT_STALE_S = 120.0


def stale_after_default() -> float:
    """Seconds without a heartbeat after which a lease is stale (``SIMGEN_LEASE_STALE_S`` or 120)."""
    raw = os.environ.get("SIMGEN_LEASE_STALE_S")
    if raw:
        try:
            val = float(raw)
        except ValueError:
            raise StoreError(f"SIMGEN_LEASE_STALE_S={raw!r}: expected a number of seconds") from None
        if not val > 0:
            raise StoreError(f"SIMGEN_LEASE_STALE_S={raw!r}: expected a positive number of seconds")
        return val
    return DEFAULT_STALE_S


def _fs_path(store: str):
    import fsspec
    fs, root = fsspec.core.url_to_fs(str(store))
    return fs, root.rstrip("/")


def _is_local(fs) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


@dataclass
class LeaseInfo:
    user: str
    host: str
    pid: int
    token: str
    started: float
    heartbeat: float
    command: str = ""

    @classmethod
    def from_json(cls, text: str) -> "LeaseInfo":
        d = json.loads(text)
        return cls(str(d.get("user", "?")), str(d.get("host", "?")), int(d.get("pid", -1)), str(d.get("token", "")),
                   float(d.get("started", 0.0)), float(d.get("heartbeat", 0.0)), str(d.get("command", "")))

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    def who(self) -> str:
        age = time.time() - self.heartbeat
        return (f"{self.user}@{self.host} pid {self.pid} (since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}, last heartbeat "
                f"{age:.0f} s ago)")

    def stale_reason(self, stale_after: float) -> str | None:
        """Why this lease may be taken over, or None when its writer looks alive."""
        age = time.time() - self.heartbeat
        if self.host == socket.gethostname() and self.pid > 0 and not _pid_alive(self.pid):
            return f"process {self.pid} on {self.host} is dead"
        if age > stale_after:
            return f"no heartbeat for {age:.0f} s (stale after {stale_after:g} s)"
        return None


def read_lease(store: str) -> LeaseInfo | None:
    """The lease of ``store``, or None when it has none (or it is unreadable)."""
    fs, root = _fs_path(store)
    path = f"{root}/{LEASE_NAME}"
    try:
        with fs.open(path, "rb") as fh:
            return LeaseInfo.from_json(fh.read().decode())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return LeaseInfo("?", "?", -1, "", 0.0, 0.0)  # garbage: treated as a stale lease


class Lease:
    """The writer lease of one store; use as a context manager or call :meth:`acquire` / :meth:`release`.

    Parameters
    ----------
    store : str
        Local path or fsspec URL of the store (its root directory is created if needed).
    stale_after : float, optional
        Seconds without a heartbeat after which another writer may take the lease over (default
        :func:`stale_after_default`).
    heartbeat : float, optional
        Seconds between renewals (default ``stale_after / 4``, at most 30 s).
    log : callable, optional
        Receives one-line messages (a takeover); default: printed to stderr.
    """

    def __init__(self, store: str, *, stale_after: float | None = None, heartbeat: float | None = None,
                 log=None):
        self.store = str(store)
        self.fs, self.root = _fs_path(self.store)
        self.path = f"{self.root}/{LEASE_NAME}"
        self.stale_after = float(stale_after) if stale_after is not None else stale_after_default()
        self.heartbeat_s = float(heartbeat) if heartbeat is not None else min(30.0, self.stale_after / 4)
        self.log = log or (lambda msg: print(f"simgen: {msg}", file=sys.stderr))
        self.info: LeaseInfo | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ low level
    def _new_info(self) -> LeaseInfo:
        try:
            user = getpass.getuser()
        except Exception:  # pragma: no cover - no user name on this system
            user = "?"
        now = time.time()
        return LeaseInfo(user, socket.gethostname(), os.getpid(), secrets.token_hex(8), now, now,
                         " ".join(sys.argv)[:200])

    def _write(self, info: LeaseInfo, exclusive: bool) -> bool:
        """Write the lease; with ``exclusive`` only if there is none (False when one appeared)."""
        data = info.to_json().encode()
        if _is_local(self.fs):
            if exclusive:
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                return True
            tmp = f"{self.path}.{info.token}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path)
            return True
        if exclusive and self.fs.exists(self.path):
            return False
        with self.fs.open(self.path, "wb") as fh:
            fh.write(data)
        if exclusive:  # no create-if-absent on object stores: last writer wins; check we are it
            time.sleep(0.05)
            cur = read_lease(self.store)
            return cur is not None and cur.token == info.token
        return True

    def _remove_if(self, token: str) -> bool:
        """Remove the lease if it still carries ``token`` (atomically on a local filesystem)."""
        if _is_local(self.fs):
            grave = f"{self.path}.{secrets.token_hex(4)}.old"
            try:
                os.rename(self.path, grave)
            except FileNotFoundError:
                return False
            try:
                with open(grave, "rb") as fh:
                    cur = LeaseInfo.from_json(fh.read().decode())
                if cur.token != token:  # somebody else's: put it back
                    os.rename(grave, self.path)
                    return False
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                pass
            os.remove(grave)
            return True
        cur = read_lease(self.store)
        if cur is None or cur.token != token:
            return False
        self.fs.rm(self.path)
        return True

    # ------------------------------------------------------------------ public
    def acquire(self) -> "Lease":
        """Take the lease, taking over a stale one; :class:`StoreError` when a live writer holds it."""
        self.fs.makedirs(self.root, exist_ok=True)
        for _ in range(5):
            info = self._new_info()
            if self._write(info, exclusive=True):
                self.info = info
                self._start_heartbeat()
                return self
            cur = read_lease(self.store)
            if cur is None:
                continue  # released meanwhile: try again
            why = cur.stale_reason(self.stale_after)
            if why is None:
                raise StoreError(f"store '{self.store}': another simgen writer holds it: {cur.who()}; "
                                 "wait for it to finish (or stop it) and re-run; a writer that died is taken "
                                 f"over after {self.stale_after:g} s without heartbeat")
            if self._remove_if(cur.token):
                self.log(f"store '{self.store}': taking over the stale writer lease of {cur.who()}: {why}")
        raise StoreError(f"store '{self.store}': could not take its writer lease (other writers keep taking it)")

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="simgen-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.renew()

    def renew(self) -> None:
        """Refresh the heartbeat (called by the background thread); marks the lease lost if taken over."""
        if self.info is None or self.lost:
            return
        try:
            cur = read_lease(self.store)
            if cur is None or cur.token != self.info.token:
                self.lost = (f"store '{self.store}': this writer's lease was taken over by "
                             f"{cur.who() if cur else 'someone who then released it'}")
                return
            self.info.heartbeat = time.time()
            self._write(self.info, exclusive=False)
        except OSError as exc:  # a transient filesystem error: try again at the next beat
            self.log(f"store '{self.store}': lease heartbeat failed ({exc}); retrying")

    def check(self) -> None:
        """Raise :class:`StoreError` if this writer no longer holds the lease."""
        if self.lost:
            raise StoreError(self.lost + "; stopped writing")
        cur = read_lease(self.store)
        if self.info is None or cur is None or cur.token != self.info.token:
            self.lost = (f"store '{self.store}': this writer's lease was taken over by "
                         f"{cur.who() if cur else 'nobody (it was removed)'}")
            raise StoreError(self.lost + "; stopped writing")

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def release(self) -> None:
        """Stop the heartbeat and remove the lease (if it is still ours)."""
        self.stop_heartbeat()
        if self.info is not None and not self.lost:
            try:
                self._remove_if(self.info.token)
            except OSError:  # pragma: no cover - the store vanished
                pass
        self.info = None

    def __enter__(self) -> "Lease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
