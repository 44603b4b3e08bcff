"""The example configuration in deploy/ parses (`haproxy -c`), with a real certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.scaleout.cluster import ROOT, ensure_haproxy


def test_example_haproxy_config_parses(tmp_path: Path) -> None:
    binary = ensure_haproxy()
    pem = tmp_path / "microtome.pem"
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    text = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert "/etc/haproxy/certs/microtome.pem" in text and "alpn h2,http/1.1" in text
    config = tmp_path / "haproxy.cfg"
    config.write_text(text.replace("/etc/haproxy/certs/microtome.pem", str(pem)))
    done = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # And a broken one does not (the check can fail).
    config.write_text(text.replace("balance roundrobin", "balance nonsense", 1)
                      .replace("/etc/haproxy/certs/microtome.pem", str(pem)))
    bad = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode != 0


def test_processes_starting_together_share_one_generated_secret(tmp_path: Path) -> None:
    """Without MICROTOME_SECRET, serve processes on one data directory agree on the key
    persisted there, even when they start at the same moment."""
    from concurrent.futures import ThreadPoolExecutor

    from microtome.core.settings import _Env, _secret

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: _secret(tmp_path / "var", _Env({})), range(16)))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["secret.key"]
