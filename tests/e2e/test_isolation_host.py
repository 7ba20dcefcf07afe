"""Certificates and the host (issue 11, items 2, 7, 8): revocation, direct issue, file modes,
secret files, the file-descriptor budget. Over real mTLS to a real server process."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import NumberSource, StartServer, call_error, init_deployment_cli
from symbolsvc_client import Deployment
from symbolsvc_client.channel import Identity, open_channel
from symbolsvc_client.clients import BrokerClient

from symbolsvc.errors import Unauthenticated
from symbolsvc.pki import Issued, issue_leaf, load_ca, spiffe_id
from symbolsvc.revocation import PeerCheck, parse_revocations

Code = grpc.StatusCode
REVOKED = {"tls": {"revoked": "pki/revoked.txt"}}


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial(cert_path: Path) -> str:
    return format(x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number, "x")


def reload(server: object, pattern: str) -> str:
    mark = server.log_size()  # type: ignore[attr-defined]
    server.signal(signal.SIGHUP)  # type: ignore[attr-defined]
    return server.wait_for_log(pattern, since=mark)  # type: ignore[attr-defined]


def test_revoked_certificates_are_refused_and_reloaded_on_sighup(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    server = start_server(fresh_deployment, REVOKED)  # the file does not exist: none revoked
    dep = Deployment(fresh_deployment)
    pki = fresh_deployment / "pki"
    chiyoda = dep.agency("city-chiyoda", server.address)
    minato = dep.agency("city-minato", server.address)
    assert chiyoda.issue(numbers.one()).symbol
    revoked = pki / "revoked.txt"
    fp = fingerprint(pki / "city-chiyoda.crt")
    revoked.write_text(f"# revoked by the operator\n\nsha256:{fp}  # lost laptop\n")
    assert "1 entries" in reload(server, r"revocation list reloaded")
    # The same connection: the next call is refused; other principals are unaffected.
    err = call_error(chiyoda.issue, numbers.one())
    assert (err.code, err.reason) == (Code.UNAUTHENTICATED, "CERTIFICATE_REVOKED")
    assert minato.issue(numbers.one()).symbol
    # By serial number too.
    revoked.write_text(revoked.read_text() + f"serial:{serial(pki / 'city-minato.crt')}\n")
    assert "2 entries" in reload(server, r"revocation list reloaded")
    assert call_error(minato.issue, numbers.one()).reason == "CERTIFICATE_REVOKED"
    # A malformed list is refused and the previous one stays in force.
    for bad in ("sha256:ABC\n", f"serial:0{serial(pki / 'tax-office.crt')}\n", "fingerprint x\n",
                b"sha256:\xff\n"):
        (revoked.write_bytes if isinstance(bad, bytes) else revoked.write_text)(bad)  # type: ignore[operator]
        line = reload(server, r"revocation list NOT reloaded")
        assert "revoked.txt" in line
        assert call_error(chiyoda.issue, numbers.one()).reason == "CERTIFICATE_REVOKED"
        assert dep.agency("tax-office", server.address).issue(numbers.one()).symbol
    assert "Traceback" not in server.log_text()
    # Removing the file revokes nothing again.
    revoked.unlink()
    assert "0 entries" in reload(server, r"revocation list reloaded")
    assert chiyoda.issue(numbers.one()).symbol
    chiyoda.close()
    minato.close()


def _intermediate(ca: Issued) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "rogue intermediate")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca.key, hashes.SHA256()))
    return Issued(cert, key)


def _pem(issued: Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.PEM)


def _key(issued: Issued) -> bytes:
    return issued.key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())


def test_only_leaves_issued_directly_by_the_deployment_ca_are_identities(
        fresh_deployment: Path, start_server: StartServer) -> None:
    server = start_server(fresh_deployment)
    pki = fresh_deployment / "pki"
    ca = load_ca(pki)
    inter = _intermediate(ca)
    leaf = issue_leaf(inter, "broker", spiffe_id("broker", "broker"))
    ident = Identity((pki / "ca.crt").read_bytes(), _pem(leaf) + _pem(inter), _key(leaf))
    broker = BrokerClient(open_channel(ident, server.address), timeout=10)
    err = call_error(broker.resolve, "pension-service", "k1." + "a" * 52, "survivor-pension",
                     "resident-tax-income", "rogue-1")
    # Refused either by the handshake (the CA allows no intermediate) or by the server's
    # direct-issue check; never served as the broker.
    assert err.code in (Code.UNAVAILABLE, Code.UNAUTHENTICATED), err
    if err.code == Code.UNAUTHENTICATED:
        assert err.reason == "NOT_ISSUED_BY_DEPLOYMENT_CA"
    broker.close()
    # The check itself, network-free: an intermediate-issued leaf and a CA certificate that
    # carries a principal's identity are refused; a proper leaf is accepted.
    peers = PeerCheck((pki / "ca.crt").read_bytes(), None)
    with pytest.raises(Unauthenticated) as info:
        peers.check(_pem(leaf), "/m")
    assert info.value.reason == "NOT_ISSUED_BY_DEPLOYMENT_CA"
    with pytest.raises(Unauthenticated):
        peers.check(_pem(inter), "/m")
    peers.check((pki / "broker.crt").read_bytes(), "/m")


def test_revocation_list_format() -> None:
    fp = "ab" * 32
    rl = parse_revocations(f"# c\n\nsha256:{fp}\nserial:1f # x\n  serial:0\n", "r")
    assert rl.fingerprints == {fp} and rl.serials == {0x1F, 0}
    for bad in (f"sha256:{fp.upper()}", "serial:01", "serial:", "sha256:" + fp[:-2],
                "SERIAL:1", "serial:1g", f"sha256:{fp} x"):
        with pytest.raises(Exception, match="r:1"):
            parse_revocations(bad, "r")


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in [root, *root.rglob("*")]}


def test_files_are_0600_and_directories_0700_whatever_the_umask(
        tmp_path: Path, fresh_deployment: Path, start_server: StartServer,
        numbers: NumberSource) -> None:
    old = os.umask(0)
    try:
        init_deployment_cli(tmp_path / "umask0", ["city-chiyoda"])
    finally:
        os.umask(old)
    # Public artefacts (certificates, the log's verifier key, agencies' HPKE public keys,
    # the permission table and the revocation list) are 0644; everything else, config.toml
    # included (its storage URL may carry a password), is 0600, and every directory 0700.
    public = (".crt", "log.vkey", ".hpke.pub", "policy.toml", "revoked.txt")

    def expected(p: str) -> int:
        if (tmp_path / "umask0" / p).is_dir():
            return 0o700
        return 0o644 if p.endswith(public) else 0o600

    loose = {p: m for p, m in _modes(tmp_path / "umask0").items() if m != expected(p)}
    assert not loose, loose
    # What a serving server creates: the registry, its WAL, the security log (this
    # deployment's directories were copied by the test, so only files are checked here).
    server = start_server(fresh_deployment)
    dep = Deployment(fresh_deployment)
    agency = dep.agency("city-chiyoda", server.address)
    agency.issue(numbers.one())
    call_error(dep.agency("city-chiyoda", server.address).release, "not-a-symbol")
    agency.close()
    server.stop()
    for p in [*fresh_deployment.rglob("*.db*"), *fresh_deployment.rglob("*.jsonl")]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


@pytest.mark.parametrize("secret", ["keys/keyring.json", "secrets/passphrase", "pki/server.key"])
def test_a_secret_file_with_loose_permissions_is_refused(fresh_deployment: Path,
                                                        secret: str) -> None:
    (fresh_deployment / secret).chmod(0o640)
    proc = subprocess.run(
        [sys.executable, "-m", "symbolsvc", "serve", "--config",
         str(fresh_deployment / "config.toml"), "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"chmod 600 {fresh_deployment / secret}" in lines[0], proc.stderr


def test_a_low_descriptor_limit_is_reported_at_start(fresh_deployment: Path) -> None:
    # The limit is set by a trampoline that then execs the server, not by preexec_fn,
    # which is unsafe in a parent with threads (grpc's, here): the forked child can
    # die or deadlock before exec.
    low = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
           "os.execv(sys.executable, [sys.executable, '-m', 'symbolsvc', *sys.argv[1:]])")
    proc = subprocess.Popen(
        [sys.executable, "-c", low, "serve", "--config",
         str(fresh_deployment / "config.toml"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        # An empty line means the process exited: its stderr says why.
        assert "serving on" in line, "" if line else proc.communicate(timeout=60)[1]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "file-descriptor limit 256 is below" in err, err
