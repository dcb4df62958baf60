"""`emulators serve`: one command starts both emulators on loopback and prints their URLs."""

import dataclasses
import json
import signal
import subprocess
import sys

import requests

from emulators.adobe import AdobeConfig
from emulators.capillary import CapillaryConfig
from emulators.cli import build_parser


def test_help_documents_every_knob():
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    help_text = serve.format_help()
    for prefix, config in (("capillary", CapillaryConfig), ("adobe", AdobeConfig)):
        for field in dataclasses.fields(config):
            assert f"--{prefix}-{field.name.replace('_', '-')}" in help_text
    for option in ("--capillary-port", "--adobe-port", "--urls-file"):
        assert option in help_text


def test_serve_starts_both_prints_urls_and_stops_on_sigterm(tmp_path):
    urls_file = tmp_path / "urls.json"
    faults = json.dumps({"rules": [{"path": "/v3/*", "status_rates": {"503": 1.0}, "max_faults": 1}]})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators",
            "serve",
            "--capillary-port",
            "0",
            "--adobe-port",
            "0",
            "--urls-file",
            str(urls_file),
            "--capillary-customers",
            "7",
            "--capillary-faults",
            faults,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        printed = dict(process.stdout.readline().strip().split(": ", 1) for _ in range(2))
        assert set(printed) == {"capillary", "adobe"}
        assert all(url.startswith("http://127.0.0.1:") for url in printed.values())
        assert json.loads(urls_file.read_text()) == printed

        counts = requests.get(f"{printed['capillary']}/_emulator/counts", timeout=10).json()
        assert counts["customers"] == 7
        token_url = f"{printed['capillary']}/v3/oauth/token/generate"
        credentials = {"key": "emulator-key", "secret": "emulator-secret"}
        assert requests.post(token_url, json=credentials, timeout=10).status_code == 503
        assert requests.post(token_url, json=credentials, timeout=10).status_code == 200
        assert requests.get(f"{printed['adobe']}/_emulator/health", timeout=10).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
