"""What a device remembers between runs, and where it keeps it.

A *profile* is one enrolled device: its keys (``keys.json``, optionally sealed with a passphrase), and
its state (``state.json``): the relay it talks to, its sequence counters, the receiver state machine,
the pinned keys of every member (trust on first use), the ladder of every message it sent, and the
messages it received. Files are written atomically (write, fsync, rename) with mode 0600, so a crash
never leaves a half-written profile and nothing is readable by other users.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hotline.client.errors import ProfileError
from hotline.protocol import DeviceKeys, ReceiverState
from hotline.protocol.errors import ProtocolError
from hotline.protocol.ids import RandomSource


@dataclass
class PinnedDevice:
    signing_key: str  # base64url
    first_seen_ms: int
    status: str = "active"


@dataclass
class Pin:
    """What this device believes about one member's devices."""

    devices: dict[str, PinnedDevice] = field(default_factory=dict)
    verified: bool = False
    # A change since the pin was accepted: sending to the member is refused until accepted or verified.
    unaccepted_change: bool = False


@dataclass
class ProfileState:
    relay_url: str
    relay_id: str
    relay_public_key: str
    channel: str
    member: str
    device: str
    role: str
    suite: str
    strict_start: bool = True
    next_seq: dict[str, int] = field(default_factory=dict)
    receiver: ReceiverState = field(default_factory=ReceiverState)
    pins: dict[str, Pin] = field(default_factory=dict)
    key_events: list[dict[str, Any]] = field(default_factory=list)
    directory_version: int = -1
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipt_outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "relay_url": self.relay_url,
            "relay_id": self.relay_id,
            "relay_public_key": self.relay_public_key,
            "channel": self.channel,
            "member": self.member,
            "device": self.device,
            "role": self.role,
            "suite": self.suite,
            "strict_start": self.strict_start,
            "next_seq": self.next_seq,
            "receiver": self.receiver.to_json(),
            "pins": {
                m: {
                    "verified": p.verified,
                    "unaccepted_change": p.unaccepted_change,
                    "devices": {
                        d: {
                            "signing_key": pd.signing_key,
                            "first_seen_ms": pd.first_seen_ms,
                            "status": pd.status,
                        }
                        for d, pd in p.devices.items()
                    },
                }
                for m, p in self.pins.items()
            },
            "key_events": self.key_events,
            "directory_version": self.directory_version,
            "sent": self.sent,
            "outbox": self.outbox,
            "receipt_outbox": self.receipt_outbox,
            "received": self.received,
            "alarms": self.alarms,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ProfileState:
        if obj.get("v") != 1:
            raise ProfileError("profile state of an unknown version")
        pins = {
            m: Pin(
                devices={d: PinnedDevice(**pd) for d, pd in p["devices"].items()},
                verified=p["verified"],
                unaccepted_change=p["unaccepted_change"],
            )
            for m, p in obj["pins"].items()
        }
        fields = {k: v for k, v in obj.items() if k not in {"v", "pins", "receiver"}}
        return cls(pins=pins, receiver=ReceiverState.from_json(obj["receiver"]), **fields)


class ProfileStore(Protocol):
    """Where a profile lives: the CLI uses :class:`FileProfileStore`, tests may keep it in memory."""

    def exists(self) -> bool: ...

    def save_keys(self, keys: DeviceKeys, rng: RandomSource) -> None: ...

    def load_keys(self) -> DeviceKeys: ...

    def save_state(self, state: ProfileState) -> None: ...

    def load_state(self) -> ProfileState: ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive access for one load-modify-save of the state (held briefly, never across I/O)."""
        ...


class MemoryProfileStore:
    def __init__(self) -> None:
        self.keys: DeviceKeys | None = None
        self.state: ProfileState | None = None

    def exists(self) -> bool:
        return self.keys is not None

    def save_keys(self, keys: DeviceKeys, rng: RandomSource) -> None:
        self.keys = keys

    def load_keys(self) -> DeviceKeys:
        if self.keys is None:
            raise ProfileError("no keys in this profile")
        return self.keys

    def save_state(self, state: ProfileState) -> None:
        self.state = state

    def load_state(self) -> ProfileState:
        if self.state is None:
            raise ProfileError("no state in this profile")
        return self.state

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def write_private_file(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600: temp file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileProfileStore:
    """A profile directory: ``keys.json`` and ``state.json``, both mode 0600, in a 0700 directory."""

    def __init__(self, directory: Path, passphrase: str | None = None) -> None:
        self.directory = directory
        self.passphrase = passphrase
        # The state last read or written by this process, and the file stamp it had then: a reload
        # is skipped while no other process has written the file.
        self._cached: tuple[tuple[int, int], ProfileState] | None = None

    def _stamp(self) -> tuple[int, int]:
        st = self.state_path.stat()
        return (st.st_mtime_ns, st.st_size)

    @property
    def keys_path(self) -> Path:
        return self.directory / "keys.json"

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    def exists(self) -> bool:
        return self.keys_path.exists() and self.state_path.exists()

    def save_keys(self, keys: DeviceKeys, rng: RandomSource) -> None:
        write_private_file(self.keys_path, keys.to_file(self.passphrase, rng))

    def load_keys(self) -> DeviceKeys:
        try:
            data = self.keys_path.read_bytes()
        except FileNotFoundError as exc:
            raise ProfileError(f"no profile at {self.directory} (run `hotline enroll` first)") from exc
        try:
            return DeviceKeys.from_file(data, self.passphrase)
        except ProtocolError as exc:
            raise ProfileError(
                f"cannot open the key file {self.keys_path}: {exc.message}", code=exc.code.value
            ) from exc

    def save_state(self, state: ProfileState) -> None:
        data = json.dumps(state.to_json(), separators=(",", ":"), sort_keys=True).encode()
        write_private_file(self.state_path, data)
        self._cached = (self._stamp(), state)

    def load_state(self) -> ProfileState:
        try:
            if self._cached is not None and self._cached[0] == self._stamp():
                return self._cached[1]
            obj = json.loads(self.state_path.read_bytes())
        except FileNotFoundError as exc:
            raise ProfileError(f"no profile at {self.directory} (run `hotline enroll` first)") from exc
        except ValueError as exc:
            raise ProfileError(f"the profile state {self.state_path} is damaged") from exc
        try:
            state = ProfileState.from_json(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"the profile state {self.state_path} is damaged") from exc
        self._cached = (self._stamp(), state)
        return state

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``.lock`` in the profile directory (other processes wait)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
