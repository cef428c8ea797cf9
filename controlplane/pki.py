"""The control plane's certificates and keys, made once per state directory.

One CA signs the API server's serving certificate (for 127.0.0.1 and the in-cluster names)
and one client certificate per component. The admin, the controller manager, the scheduler
and kwok are in ``system:masters``: they are our own processes on loopback, and what this
control plane tests is how *our* code is authorised, which goes through ServiceAccount tokens
and RBAC. A separate RSA key signs ServiceAccount tokens (TokenRequest).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: (file stem, common name, organisation) of every client certificate.
CLIENTS = (
    ("admin", "prefect-canary-admin", "system:masters"),
    ("controller-manager", "system:kube-controller-manager", "system:masters"),
    ("scheduler", "system:kube-scheduler", "system:masters"),
    ("kwok", "kwok-controller", "system:masters"),
)
SERVICE_IP = "10.0.0.1"
_VALID = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    def complete(self) -> bool:
        names = ["ca", "apiserver", *(c[0] for c in CLIENTS)]
        files = [self.sa_key, self.sa_pub] + [p for n in names for p in (self.cert(n), self.key(n))]
        return all(f.is_file() for f in files)

    def ensure(self) -> None:
        """Create whatever is missing (all of it on a first start; nothing afterwards)."""
        if self.complete():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prefect-canary-local-ca")])
        ca_cert = (
            _builder(ca_name, ca_name, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self._write("ca", ca_cert, ca_key)
        server_key = ec.generate_private_key(ec.SECP256R1())
        names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"]
        san = x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in names]
            + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", SERVICE_IP)])
        server = (
            _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), ca_name,
                     server_key.public_key())
            .add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self._write("apiserver", server, server_key)
        for stem, common_name, organisation in CLIENTS:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                                 x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
            cert = (
                _builder(subject, ca_name, key.public_key())
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            self._write(stem, cert, key)
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _secret(self.sa_key, sa.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.TraditionalOpenSSL,
                                              serialization.NoEncryption()))
        self.sa_pub.write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def _write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert(stem).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _secret(self.key(stem), key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
             ) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALID))


def _secret(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)
