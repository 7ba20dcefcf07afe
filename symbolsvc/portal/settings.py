"""The ``[portal]`` section of config.toml, with its defaults resolved (docs/CONFIG.md)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ConfigError

_WITNESS_VKEY = re.compile(r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}")


@dataclass(frozen=True, slots=True)
class PortalSettings:
    listen_host: str
    listen_port: int
    public_url: str  # the links' base, without a trailing slash
    target: str  # the symbolsvc server the portal calls as the portal principal
    ca: Path
    cert: Path
    key: Path
    vkey: Path
    link_key: Path
    link_ttl_seconds: int
    labels: Path | None
    witness_vkeys: Path | None  # one cosignature/v1 vkey a line (docs/WITNESS.md)
    witness_quorum: int


def _host_port(listen: str, what: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT, got {listen!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def witness_keys(settings: PortalSettings) -> list[str]:
    """The witnesses' vkeys (``name+hash+base64(0x04 || key)``), checked for form only (the
    browser checks the hash); ConfigError when malformed or fewer than the quorum."""
    keys: list[str] = []
    if settings.witness_vkeys is not None:
        try:
            text = settings.witness_vkeys.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{settings.witness_vkeys}: cannot read: {exc}") from None
        for line in filter(None, (ln.strip() for ln in text.splitlines())):
            if not _WITNESS_VKEY.fullmatch(line) or _typed(line.split("+", 2)[2]) != 0x04:
                raise ConfigError(f"{settings.witness_vkeys}: {line[:40]!r} is not a "
                                  "cosignature/v1 vkey (name+hash+base64(0x04 || key))")
            keys.append(line)
    if settings.witness_quorum > len(keys):
        raise ConfigError(f"[portal] witness_quorum {settings.witness_quorum} is more than "
                          f"the {len(keys)} witness keys of [portal] witness_vkeys")
    return keys


def _typed(b64: str) -> int:
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        return -1
    return raw[0] if len(raw) == 33 else -1


def portal_settings(config: Config, listen: str | None = None) -> PortalSettings:
    """The section's values; ``listen`` overrides ``[portal] listen`` (port 0: any)."""
    p = config.settings["portal"]
    base = config.base
    host, port = _host_port(listen or p["listen"], f"{config.path}: [portal] listen")
    target = p["target"]
    if not target:
        shost, sport = _host_port(config.listen, f"{config.path}: [server] listen")
        wildcard = shost in ("0.0.0.0", "", "::")  # noqa: S104 (reached on loopback)
        target = f"{'127.0.0.1' if wildcard else shost}:{sport}"
    shown = f"[{host}]" if ":" in host else host
    public = (p["public_url"] or f"http://{shown}:{port}").rstrip("/")
    if not public.startswith(("http://", "https://")):
        raise ConfigError(f"{config.path}: [portal] public_url: expected an http(s) URL")
    return PortalSettings(
        listen_host=host, listen_port=port, public_url=public, target=target,
        ca=config.tls_ca,
        cert=p["cert"] or base / "pki" / "portal.crt",
        key=p["key"] or base / "pki" / "portal.key",
        vkey=p["vkey"] or base / "pki" / "log.vkey",
        link_key=p["link_key"] or base / "secrets" / "portal-link.key",
        link_ttl_seconds=p["link_ttl_seconds"],
        labels=p["labels"],
        witness_vkeys=p["witness_vkeys"],
        witness_quorum=p["witness_quorum"],
    )
