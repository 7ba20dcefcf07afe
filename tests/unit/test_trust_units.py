"""Issue 14 items 1-2 without a network: the signed-inquiry encoding (against an encoder
written here from docs/SIGNED_INQUIRIES.md, and the client library's copy), the server's
check (freshness with an injected clock, the certificate's agency, every field bound), the
records' extensions and the auditor's check, HPKE sealing against an independent open."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers.hpke_open import open_independently
from symbolsvc_client import trust

from symbolsvc import inquiry, sealing
from symbolsvc.blinding import Blinder
from symbolsvc.errors import FailedPrecondition, PermissionDenied
from symbolsvc.inquiries import Asked, InquiryChecker
from symbolsvc.pki import issue_leaf, make_ca, spiffe_id, write_hpke_pair, write_pair
from symbolsvc.records import AccessKind, AccessRecord, Ext
from symbolsvc.verify.common import Inquiries
from symbolsvc.verify.errors import AuditFailure

NOW = 1_767_225_600_000_000
SYM = "k1." + "a" * 52


def _s(x: str) -> bytes:
    b = x.encode()
    return struct.pack(">H", len(b)) + b


def _independent(kind: int, requester: str, symbol: str, provider: str, ow: str, item: str,
                 xid: str, at: int) -> bytes:
    digest = hashlib.sha256(b"symbolsvc inquiry symbol v1\x00" + _s(requester) + _s(xid)
                            + _s(symbol)).digest()
    return (b"symbolsvc inquiry v1\x00" + bytes([kind]) + _s(requester) + digest + _s(provider)
            + _s(ow) + _s(item) + _s(xid) + struct.pack(">Q", at))


def test_encoding_is_the_documented_one_and_the_clients() -> None:
    args = ("city-chiyoda", SYM, "tax-office", "resident-tax", "national-tax-income", "x-1", NOW)
    digest = inquiry.symbol_digest("city-chiyoda", "x-1", SYM)
    inq = inquiry.Inquiry(AccessKind.TRANSLATE, "city-chiyoda", digest, "tax-office",
                          "resident-tax", "national-tax-income", "x-1", NOW)
    assert inq.encode() == _independent(1, *args) == trust.inquiry_bytes(*args)
    res = replace(inq, kind=AccessKind.RESOLVE, provider="")
    assert res.encode() == _independent(2, "city-chiyoda", SYM, "", *args[3:]) == \
        trust.inquiry_bytes("city-chiyoda", SYM, None, *args[3:])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    write_pair(ca, d, "ca")
    for name in ("city-chiyoda", "tax-office"):
        write_pair(issue_leaf(ca, name, spiffe_id("agency", name)), d, name)
    write_pair(issue_leaf(ca, "broker", spiffe_id("broker", "broker")), d, "broker")
    # a certificate under a name it does not carry: the SAN decides, not the file name
    write_pair(issue_leaf(ca, "x", spiffe_id("agency", "tax-office")), d, "city-minato")
    return d


def _asked(pki: Path, name: str = "city-chiyoda", at: int = NOW, **change: str) -> Asked:
    s = trust.sign_inquiry(pki / f"{name}.key", requester="city-chiyoda", symbol=SYM,
                           provider="tax-office", office_work="resident-tax",
                           info_item="national-tax-income", exchange_id="x-1", issued_at_us=at)
    a = Asked(AccessKind.TRANSLATE, s.requester, s.symbol, "tax-office", s.office_work,
              s.info_item, s.exchange_id, s.signature, s.issued_at_us)
    return replace(a, **change)


def _checker(pki: Path, now: int = NOW, required: bool = True) -> InquiryChecker:
    return InquiryChecker(pki, required=required, window_s=300, clock_us=lambda: now)


def test_check_accepts_the_requesters_signature_and_keeps_it(pki: Path) -> None:
    a = _asked(pki)
    ext = _checker(pki).check(a)
    rec = AccessRecord(AccessKind.TRANSLATE, NOW, a.requester, a.office_work, a.info_item,
                       a.exchange_id, ("tax-office",), bytes(32)).with_ext(**ext)
    back = AccessRecord.decode(rec.encode())
    assert back.get(Ext.INQUIRY_SIGNATURE) == a.signature
    assert back.get(Ext.INQUIRY_SYMBOL_DIGEST) == inquiry.symbol_digest(a.requester,
                                                                      a.exchange_id, SYM)
    found = inquiry.from_record(back)
    assert found is not None and SYM.encode() not in rec.encode()
    keys = inquiry.agency_keys(pki)
    audit = Inquiries(keys)
    audit.check(0, back)
    assert audit.checked == 1
    # the auditor refuses a record whose signature is not the requester's
    forged = back.with_ext(INQUIRY_SIGNATURE=_asked(pki, "broker").signature)
    with pytest.raises(AuditFailure, match="does not verify"):
        Inquiries(keys).check(7, forged)
    with pytest.raises(AuditFailure, match="no certificate"):
        Inquiries({}).check(7, back)
    with pytest.raises(AuditFailure, match="incomplete"):
        Inquiries(keys).check(7, replace(back, ext=back.ext[:1]))
    unchecked = Inquiries(None)
    unchecked.check(0, back)
    assert unchecked.unchecked == 1


@pytest.mark.parametrize("change", [
    {"symbol": "k1." + "b" * 52}, {"provider": "city-minato"}, {"office_work": "other"},
    {"info_item": "other"}, {"exchange_id": "x-2"}, {"requester": "tax-office"},
])
def test_every_field_is_bound(pki: Path, change: dict[str, str]) -> None:
    with pytest.raises(PermissionDenied) as info:
        _checker(pki).check(_asked(pki, **change))
    assert info.value.reason == "BAD_INQUIRY_SIGNATURE"


def test_signers_other_than_the_requester_are_refused(pki: Path) -> None:
    for name in ("broker", "tax-office"):
        with pytest.raises(PermissionDenied, match="does not verify"):
            _checker(pki).check(_asked(pki, name))
    # a key of no certificate
    a = _asked(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    digest = inquiry.symbol_digest(a.requester, a.exchange_id, a.symbol)
    sig = inquiry.sign(key, inquiry.Inquiry(a.kind, a.requester, digest, a.provider,
                                            a.office_work, a.info_item, a.exchange_id, NOW))
    with pytest.raises(PermissionDenied):
        _checker(pki).check(replace(a, signature=sig))
    with pytest.raises(PermissionDenied):
        _checker(pki).check(replace(a, signature=b"\x00" * 10_000))


def test_agency_keys_go_by_the_certificate_not_the_file_name(pki: Path) -> None:
    keys = inquiry.agency_keys(pki)
    assert set(keys) == {"city-chiyoda", "tax-office", "broker"}  # by SAN, each its own
    assert len(keys["tax-office"]) == 2  # tax-office.crt and the one filed as city-minato.crt


def test_freshness_window_both_ways(pki: Path) -> None:
    window = 300_000_000
    for at in (NOW - window, NOW + window):
        assert _checker(pki).check(_asked(pki, at=at))
    for at in (NOW - window - 1, NOW + window + 1):
        with pytest.raises(PermissionDenied) as info:
            _checker(pki).check(_asked(pki, at=at))
        assert info.value.reason == "INQUIRY_EXPIRED"


def test_unsigned_is_refused_only_when_required(pki: Path) -> None:
    a = replace(_asked(pki), signature=b"")
    assert _checker(pki, required=False).check(a) == {}
    with pytest.raises(PermissionDenied) as info:
        _checker(pki).check(a)
    assert (info.value.reason, info.value.field) == ("INQUIRY_NOT_SIGNED", "inquiry_signature")
    # a signature that is present is checked even when not required
    with pytest.raises(PermissionDenied):
        _checker(pki, required=False).check(_asked(pki, "broker"))


@pytest.mark.parametrize("suite", ["x25519", "mlkem768-x25519"])
def test_seal_opens_independently_and_only_for_its_exchange(tmp_path: Path, suite: str) -> None:
    priv, pub = write_hpke_pair(tmp_path, "tax-office", suite)
    assert priv.stat().st_mode & 0o777 == 0o600 and pub.stat().st_mode & 0o777 == 0o644
    blinder = Blinder(tmp_path)
    sealed = Blinder.seal(blinder.key_for("tax-office"), SYM, "x-1", "city-chiyoda")
    line = priv.read_text()
    assert open_independently(sealed, line, "x-1", "city-chiyoda") == SYM
    assert trust.open_sealed_symbol(sealed, priv, exchange_id="x-1",
                                    requester="city-chiyoda") == SYM
    for xid, req in (("x-2", "city-chiyoda"), ("x-1", "city-minato")):
        with pytest.raises(ValueError):
            trust.open_sealed_symbol(sealed, line, exchange_id=xid, requester=req)
    # two seals of one symbol differ (fresh KEM encapsulation each time)
    assert Blinder.seal(blinder.key_for("tax-office"), SYM, "x-1", "city-chiyoda") != sealed


def test_replaced_key_is_used_next_and_a_missing_one_fails_before_writing(
        tmp_path: Path) -> None:
    blinder = Blinder(tmp_path)
    with pytest.raises(FailedPrecondition) as info:
        blinder.key_for("tax-office")
    assert info.value.reason == "NO_SEALING_KEY"
    write_hpke_pair(tmp_path, "tax-office", "x25519")
    first = blinder.key_for("tax-office")
    _, pub = sealing.generate("mlkem768-x25519")
    (tmp_path / "tax-office.hpke.pub").write_text(pub)
    assert blinder.key_for("tax-office").suite == "mlkem768-x25519" != first.suite
    (tmp_path / "tax-office.hpke.pub").write_text("symbolsvc-hpke-v1 x25519 AAAA\n")
    with pytest.raises(FailedPrecondition):
        blinder.key_for("tax-office")


@pytest.mark.parametrize("line", [
    "", "symbolsvc-hpke-v1 x25519", "other x25519 AAAA", "symbolsvc-hpke-v1 rsa AAAA",
    "symbolsvc-hpke-v1 x25519 !!!!", "symbolsvc-hpke-v1 mlkem768-x25519 " + "A" * 44,
])
def test_bad_key_lines_are_refused(line: str) -> None:
    with pytest.raises(sealing.KeyFileError):
        sealing.public_key(line)


def test_revoked_or_foreign_certificates_sign_nothing(pki: Path, tmp_path: Path) -> None:
    """``cert revoke`` stops a stolen key's inquiries at once (the list is re-read when it
    changes); a certificate the deployment CA did not issue is no registration."""
    from cryptography import x509

    from symbolsvc.revoked import entries_for

    revoked = tmp_path / "revoked.txt"
    checker = InquiryChecker(pki, required=True, window_s=300, clock_us=lambda: NOW,
                             revoked=revoked)
    assert checker.check(_asked(pki))
    cert = x509.load_pem_x509_certificate((pki / "city-chiyoda.crt").read_bytes())
    revoked.write_text("".join(f"{e}\n" for e in entries_for(cert)))
    with pytest.raises(PermissionDenied, match="does not verify"):
        checker.check(_asked(pki))
    revoked.write_text("garbage\n")  # malformed: the last good list stays in force
    with pytest.raises(PermissionDenied):
        checker.check(_asked(pki))
    other = tmp_path / "other"
    ca2 = make_ca()
    write_pair(ca2, other, "ca")
    foreign = InquiryChecker(pki, required=True, window_s=300, clock_us=lambda: NOW,
                             ca=other / "ca.crt")
    with pytest.raises(PermissionDenied):
        foreign.check(_asked(pki))


def test_the_portal_signs_as_itself(tmp_path: Path) -> None:
    """The portal (roles portal + agency, SAN spiffe://DOMAIN/portal) may be a requester."""
    ca = make_ca()
    write_pair(ca, tmp_path, "ca")
    write_pair(issue_leaf(ca, "portal", spiffe_id("portal", "portal")), tmp_path, "portal")
    s = trust.sign_inquiry(tmp_path / "portal.key", requester="portal", symbol=SYM,
                           office_work="w", info_item="i", exchange_id="p-1", issued_at_us=NOW)
    a = Asked(AccessKind.RESOLVE, "portal", SYM, "", "w", "i", "p-1", s.signature, NOW)
    assert _checker(tmp_path).check(a)
    assert set(inquiry.agency_keys(tmp_path)) == {"portal"}
