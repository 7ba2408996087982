"""mqtts:// with a CA file and a password, as centers run their brokers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import (
    GatewayProc,
    Mosquitto,
    SimStation,
    Subscriber,
    check_delivery,
    free_port,
    hydrolink,
    obs_by_key,
    resilient_station,
    run,
)


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1; and another CA."""
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
         "other-ca.pem", "-days", "2", "-subj", "/CN=some other CA", cwd=d)
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=hydrolink test CA", cwd=d)
    _ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
                    reason="needs openssl and mosquitto_passwd")
def test_mqtts_with_ca_file_and_password(tmp_path: Path, registry: Path,
                                         gateways: list[GatewayProc]) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pki / "passwd"), "gateway", "s3cret"],
                   check=True, capture_output=True)
    tls_port = free_port()
    broker = Mosquitto(tmp_path / "mosquitto", extra=(
        f"listener {tls_port} 127.0.0.1\nallow_anonymous false\npassword_file {pki}/passwd\n"
        f"cafile {pki}/ca.pem\ncertfile {pki}/server.pem\nkeyfile {pki}/server.key\n"))
    broker.start()
    try:
        sub = Subscriber(broker.port, name="tls").start()  # plain listener, for the test only
        url = f"mqtts://gateway:s3cret@127.0.0.1:{tls_port}"
        # a file that is no certificate: one line at start
        out = hydrolink("gateway", "--registry", str(registry), "--listen", "127.0.0.1:0",
                        "--mqtt", url, "--mqtt-ca", __file__)
        assert out.returncode == 2 and out.stderr.startswith("hydrolink: --mqtt-ca")
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        # the wrong CA: the broker is not trusted, and the log says why
        (tmp_path / "bad").mkdir()
        bad = GatewayProc(tmp_path / "bad", registry, url,
                          extra=["--mqtt-ca", str(pki / "other-ca.pem")])
        gateways.append(bad)
        bad.start()
        assert "CERTIFICATE_VERIFY_FAILED" in bad.wait_log("mqtt unavailable")
        assert bad.terminate() == 0
        gw = GatewayProc(tmp_path, registry, url, extra=["--mqtt-ca", str(pki / "ca.pem")])
        gateways.append(gw)
        gw.start()
        gw.wait_log("mqtt connected")
        st = SimStation(1001)
        run(resilient_station(st, lambda: gw.port, 5))
        sub.wait(lambda m: len(obs_by_key(m)) >= 5, 20, "the frames over TLS")
        assert check_delivery([st], sub.messages) == 5 * 24
        assert gw.terminate() == 0
        sub.stop()
    finally:
        broker.stop()
