"""An https delivery goes to the address that was checked, while TLS still verifies the
certificate for the URL's name: a receiver with its own test authority on 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import standardwebhooks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from finsync.application.webhooks import new_secret
from finsync.infrastructure.webhooks import HttpWebhookSender
from tests.fakes.receiver import Receiver
from tests.fakes.server import serve

pytestmark = pytest.mark.integration
NAME = "hooks.example.test"


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for NAME (its own authority), as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, int, Path]]:
    cert, key = _certificate(tmp_path)
    fake = Receiver()
    with serve(fake.app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        yield fake, int(url.rsplit(":", 1)[1]), cert


async def _to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]  # the fake DNS: every name is this machine


async def test_https_goes_to_the_checked_address_and_verifies_the_name(
    tls_receiver: tuple[Receiver, int, Path],
) -> None:
    fake, port, cert = tls_receiver
    trust = ssl.create_default_context(cafile=str(cert))
    sender = HttpWebhookSender(["127.0.0.1"], timeout=5, resolver=_to_loopback, tls=trust)
    secret, body = new_secret(), b'{"type":"sync.succeeded","timestamp":"2026-11-29T12:00:00Z","data":{}}'

    url = await sender.check_url(f"https://{NAME}:{port}/hook")
    result = await sender.send(url, secret, "msg_1", body)
    assert (result.status_code, result.error) == (204, None)
    (got,) = fake.received
    assert got.host == f"{NAME}:{port}"  # the name as given, on the checked address
    assert standardwebhooks.Webhook(secret).verify(got.body, got.headers)["type"] == "sync.succeeded"

    # The same address under a name the certificate does not hold: TLS refuses it.
    other = await sender.send(f"https://other.example.test:{port}/hook", secret, "msg_2", body)
    assert other.status_code is None
    assert other.error is not None
    assert "ConnectError" in other.error
    assert len(fake.received) == 1
    # Without the allow-list the loopback answer is refused before any connection.
    strict = HttpWebhookSender([], timeout=5, resolver=_to_loopback, tls=trust)
    refused = await strict.send(url, secret, "msg_3", body)
    assert refused.refused
    assert len(fake.received) == 1
