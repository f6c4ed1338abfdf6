"""A TLS terminator on 127.0.0.1 in front of the stand-in: the real CAMB API is HTTPS only.

The stand-in speaks plain HTTP, which makes a new connection per poll (the peer's design) cheaper
than it is against ``https://client.camb.ai``. This proxy accepts TLS and pipes every connection,
byte for byte, to one new plain connection to the stand-in, so keep-alive behaves end to end and the
stand-in still counts every request. Clients trust its self-signed certificate through
``SSL_CERT_FILE``. Run: ``python -m benchmarks.tls_proxy --upstream-port P --cert C --key K``;
it prints ``TLS proxy: https://127.0.0.1:<port>`` and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import signal
import ssl
from pathlib import Path

from tests.processes import end_process


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for IP ``host``; returns (certificate, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "proxy-cert.pem", directory / "proxy-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(upstream_port: int, cert: Path, key: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"TLS proxy: https://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


class TlsProxy:
    """The proxy in a child process, in front of the stand-in at ``upstream_url``."""

    def __init__(self, upstream_url: str, directory: Path) -> None:
        import subprocess
        import sys

        from benchmarks._common import REPO, worker_env

        self.cert, key = make_certificate(directory)
        port = upstream_url.rsplit(":", 1)[1].rstrip("/")
        command = [sys.executable, "-m", "benchmarks.tls_proxy", "--upstream-port", port]
        self.process = subprocess.Popen(
            [*command, "--cert", str(self.cert), "--key", str(key)],
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=worker_env(),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("TLS proxy: "):
            self.stop()
            raise RuntimeError(f"the TLS proxy did not start: {line!r}")
        self.url = line.removeprefix("TLS proxy: ")

    def stop(self) -> None:
        end_process(self.process, grace=15)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> TlsProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.upstream_port, args.cert, args.key))


if __name__ == "__main__":
    main()
