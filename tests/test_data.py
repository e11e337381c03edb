"""Getting the data: verified download, explicit paths, and an offline error that says what to do."""
from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from localmode import data


def test_real_car_data_matches_spec(car_data: Path, dataset_spec: dict):
    assert data.sha256_of(car_data) == dataset_spec["source"]["sha256"]
    lines = car_data.read_text().splitlines()
    assert len(lines) == dataset_spec["source"]["rows"]
    width = len(dataset_spec["columns"])
    assert all(len(line.split(",")) == width for line in lines)


def test_explicit_path_wins_over_env(tmp_path, monkeypatch):
    mine = tmp_path / "mine.csv"
    mine.write_text("a,b\n")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "other.csv"))
    assert data.resolve(mine) == mine.resolve()


def test_car_data_from_the_environment_is_never_another_datasets_default(tmp_path, monkeypatch):
    car = tmp_path / "car.data"
    car.write_text("a,b\n")
    monkeypatch.setenv(data.ENV_VAR, str(car))
    assert data.resolve(None, data.load_spec()) == car.resolve()
    penguins = data.load_spec(data.REPO_ROOT / "datasets" / "penguins.json")
    with pytest.raises(data.DataUnavailable, match=r"'penguins' names no download source: pass the data file"):
        data.resolve(None, penguins)


def test_missing_path_names_the_path(tmp_path):
    with pytest.raises(data.DataUnavailable, match="does not exist"):
        data.resolve(tmp_path / "nope.csv")


@pytest.fixture
def local_http(tmp_path):
    """Serves tmp_path on loopback: stands in for the dataset's download site."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _spec_for(url: str, content: bytes) -> dict:
    return {"source": {"urls": [url], "member": "car.data", "sha256": hashlib.sha256(content).hexdigest(), "rows": 1}}


def test_download_verifies_and_caches(local_http, tmp_path):
    root, base = local_http
    (root / "car.data").write_bytes(b"vhigh,vhigh,2,2,small,low,unacc\n")
    spec = _spec_for(f"{base}/car.data", (root / "car.data").read_bytes())
    cache = tmp_path / "cache"
    path = data.download(spec, cache_dir=cache)
    assert path.read_bytes() == (root / "car.data").read_bytes()
    (root / "car.data").unlink()  # a second call must not need the network
    assert data.download(spec, cache_dir=cache) == path


def test_download_rejects_wrong_checksum(local_http, tmp_path):
    root, base = local_http
    (root / "car.data").write_bytes(b"tampered\n")
    spec = _spec_for(f"{base}/car.data", b"original\n")
    with pytest.raises(data.DataUnavailable, match="sha256"):
        data.download(spec, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "car.data").exists()


def test_offline_error_says_how_to_pass_a_path(tmp_path):
    spec = _spec_for("http://127.0.0.1:9/car.data", b"x")
    with pytest.raises(data.DataUnavailable) as info:
        data.download(spec, cache_dir=tmp_path, timeout=2)
    assert "DATA=" in str(info.value) and data.ENV_VAR in str(info.value)
