"""The reference portal's pure parts: signed links, the two languages, labels, settings."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from symbolsvc.config import parse_config
from symbolsvc.errors import ConfigError
from symbolsvc.portal import i18n
from symbolsvc.portal.links import KEY_BYTES, LinkError, load_key, mint, open_link
from symbolsvc.portal.settings import portal_settings

SYMBOL = "k1." + "a" * 52
KEY = bytes(range(KEY_BYTES))
NOW = 1_800_000_000.0


def test_a_link_opens_until_it_expires() -> None:
    token = mint(KEY, SYMBOL, 600, now=NOW)
    assert open_link(KEY, token, now=NOW).symbol == SYMBOL
    assert open_link(KEY, token, now=NOW + 599).expires == int(NOW) + 600
    with pytest.raises(LinkError, match="expired"):
        open_link(KEY, token, now=NOW + 600)


def test_an_altered_or_foreign_link_is_refused() -> None:
    token = mint(KEY, SYMBOL, 600, now=NOW)
    other = mint(KEY, "k1." + "b" * 52, 600, now=NOW)
    payload, sig = token.rsplit(".", 1)
    for bad in (
        other.rsplit(".", 1)[0] + "." + sig,  # another person's payload under my signature
        payload + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"),
        payload,
        "",
        "x" * 600,
        mint(b"\x01" * KEY_BYTES, SYMBOL, 600, now=NOW),  # signed with another key
    ):
        with pytest.raises(LinkError):
            open_link(KEY, bad, now=NOW)


def test_the_link_key_is_made_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "portal-link.key"
    with pytest.raises(ConfigError, match="missing"):
        load_key(path)
    key = load_key(path, create=True)
    assert len(key) == KEY_BYTES and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key  # created once, then read
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="accessible by others"):
        load_key(path)
    path.chmod(0o600)
    path.write_text("not hex\n")
    with pytest.raises(ConfigError, match="bytes of hex"):
        load_key(path)


def test_every_phrase_exists_in_both_languages_with_the_same_placeholders() -> None:
    for key, (ja, en) in i18n.TEXT.items():
        assert ja and en, key
        assert set(re.findall(r"\{(\w+)\}", ja)) == set(re.findall(r"\{(\w+)\}", en)), key


def test_the_language_comes_from_the_query_then_the_browser_then_japanese() -> None:
    assert i18n.negotiate("en", "ja") == "en"
    assert i18n.negotiate(None, "en-GB,en;q=0.8") == "en"
    assert i18n.negotiate("fr", "fr-FR,ja;q=0.5") == "ja"
    assert i18n.negotiate(None, "") == "ja"


def test_times_are_shown_in_japan_time_in_either_language() -> None:
    us = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC
    assert i18n.format_time("ja", us) == "2026年1月1日 09:00 (JST)"
    assert i18n.format_time("en", us) == "01 Jan 2026, 09:00 JST"
    assert i18n.iso_time(us) == "2026-01-01T00:00:00Z"
    assert i18n.format_time("en", None) == ""


def test_labels_name_ids_in_words_and_a_bad_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.toml"
    path.write_text('[agencies.city-chiyoda]\nja = "千代田区"\nen = "Chiyoda City"\n')
    labels = i18n.Labels.load(path)
    assert labels.name("ja", "agencies", "city-chiyoda") == "千代田区"
    assert labels.name("en", "agencies", "city-chiyoda") == "Chiyoda City"
    assert labels.name("en", "agencies", "tax-office") == "tax-office"  # no label: the ID
    assert i18n.Labels.load(None).name("ja", "info_item", "x") == "x"
    for bad in ('[agency.x]\nja = "y"\n', '[agencies.x]\nde = "y"\n', "[agencies\n"):
        path.write_text(bad)
        with pytest.raises(ConfigError):
            i18n.Labels.load(path)


def _config(tmp_path: Path, portal: dict[str, object]) -> object:
    doc = {"tls": {"ca": "pki/ca.crt", "cert": "pki/server.crt", "key": "pki/server.key"},
           "storage": {"url": "sqlite:data/registry.db"}, "keys": {"keyring": "k.json"},
           "policy": {"file": "policy.toml"}, "server": {"listen": "0.0.0.0:50051"},
           "portal": portal}
    return parse_config(tmp_path / "config.toml", doc)


def test_portal_settings_default_to_the_files_init_writes(tmp_path: Path) -> None:
    s = portal_settings(_config(tmp_path, {}))  # type: ignore[arg-type]
    assert (s.listen_host, s.listen_port) == ("127.0.0.1", 8080)
    assert s.public_url == "http://127.0.0.1:8080"
    assert s.target == "127.0.0.1:50051"  # the wildcard listen, reached on loopback
    assert s.cert == tmp_path / "pki" / "portal.crt" and s.vkey == tmp_path / "pki" / "log.vkey"
    assert s.link_key == tmp_path / "secrets" / "portal-link.key"
    s = portal_settings(_config(tmp_path, {  # type: ignore[arg-type]
        "public_url": "https://portal.example/", "link_ttl_seconds": 120}), "[::1]:0")
    assert (s.listen_host, s.listen_port, s.public_url) == ("::1", 0, "https://portal.example")
    with pytest.raises(ConfigError, match="link_ttl_seconds"):
        _config(tmp_path, {"link_ttl_seconds": 5})
    with pytest.raises(ConfigError, match="unknown key"):
        _config(tmp_path, {"listn": "x"})
    with pytest.raises(ConfigError, match="public_url"):
        portal_settings(_config(tmp_path, {"public_url": "ftp://x"}))  # type: ignore[arg-type]


def test_witness_keys_must_be_cosignature_vkeys_and_cover_the_quorum(tmp_path: Path) -> None:
    import base64

    from symbolsvc.portal.settings import witness_keys

    good = "witness.example/w1+1a2b3c4d+" + base64.b64encode(b"\x04" + bytes(32)).decode()
    log_key = "log.example+1a2b3c4d+" + base64.b64encode(b"\x01" + bytes(32)).decode()
    path = tmp_path / "witnesses"
    path.write_text(f"{good}\n\n")
    s = portal_settings(_config(tmp_path, {  # type: ignore[arg-type]
        "witness_vkeys": "witnesses", "witness_quorum": 1}))
    assert witness_keys(s) == [good]
    path.write_text(f"{good}\n{log_key}\n")
    with pytest.raises(ConfigError, match="not a cosignature/v1 vkey"):
        witness_keys(s)
    s = portal_settings(_config(tmp_path, {"witness_quorum": 1}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="witness_quorum 1 is more than the 0"):
        witness_keys(s)
