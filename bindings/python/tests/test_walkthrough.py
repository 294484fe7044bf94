"""The README's Python walk-through (examples/walkthrough.py) against a real
fedmr-server on loopback: the installed package syncs, trains and uploads."""

import os
import pathlib
import subprocess
import sys
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
SERVER = pathlib.Path(
    os.environ.get("FEDMR_SERVER_BIN", REPO / os.environ.get("CARGO_TARGET_DIR", "target") / "debug" / "fedmr-server")
)


@pytest.fixture()
def server(tmp_path):
    if not SERVER.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SERVER} missing (cargo build -p fedmr-server)")
        pytest.skip(f"{SERVER} missing: cargo build -p fedmr-server")
    process = subprocess.Popen(
        [str(SERVER), "serve", "--init", "--bind", "127.0.0.1:0", "--data-dir", str(tmp_path / "server"),
         "--admin-token", "walk-admin", "--protection", "hidden-count"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stderr.readline()
        assert "serving on" in line, line
        url = line.strip().rsplit(" ", 1)[-1]
        request = urllib.request.Request(
            f"{url}/v1/admin/clients", data=b"walk-phone", headers={"Authorization": "Bearer walk-admin"}
        )
        token = urllib.request.urlopen(request, timeout=10).read().decode()
        yield url, token
    finally:
        process.kill()
        process.wait()


def test_the_walkthrough_syncs_trains_and_uploads(server, tmp_path):
    url, token = server
    example = REPO / "bindings" / "python" / "examples" / "walkthrough.py"
    run = subprocess.run(
        [sys.executable, str(example), url, token, str(tmp_path / "phone.sqlite")],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "SyncReport(catalog_updated=True, model_updated=True" in out, out
    assert out.count("Recommendation(item_key=") == 5, out
    assert "UploadReport(delivered=1" in out, out
    assert "rounds_trained=1" in out, out
