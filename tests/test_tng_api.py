"""The TNG web-API cutout client against a local HTTP server on 127.0.0.1 serving SYNTHETIC cutouts.

The server (a thread, stopped after each test) checks the ``api-key`` header, honours ``Range`` requests and
can drop the connection part-way through a file. Its cutouts are cut from the synthetic TNG run with
illustris_python (all fields of the FoF group, the snapshot's Header), as the real API cuts them from
snapshots.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import illustris_python as il
import numpy as np
import pytest

from darkclusters.simulations.tng import load_tng_halo
from darkclusters.simulations.tng_api import (
    TngApiError,
    cutout_url,
    download_halo_cutout,
    fetch_halo_info,
    load_cutout_halo,
)

SIM, SNAP, HALO = "TNG-tiny", 84, 0
KEY = "k3y-0f-the-t3st-5erver"  # what the server accepts; the tests check it never shows up in errors or logs
CUTOUT_PATH = f"/api/{SIM}/snapshots/{SNAP}/halos/{HALO}/cutout.hdf5"
INFO_PATH = f"/api/{SIM}/snapshots/{SNAP}/halos/{HALO}/info.json"


def make_cutout(base_path: Path, snap: int, halo_id: int, out: Path) -> Path:
    """A halo cutout in the API's layout: the group's PartTypeN datasets (code units) and a Header."""
    with h5py.File(base_path / f"snapdir_{snap:03d}" / f"snap_{snap:03d}.0.hdf5", "r") as f:
        header = dict(f["Header"].attrs)
    counts = np.zeros(6, dtype=np.int32)
    with h5py.File(out, "w") as f:
        for part_type in (0, 1, 4, 5):
            data = il.snapshot.loadHalo(str(base_path), snap, halo_id, part_type)
            if data["count"] == 0:
                continue
            counts[part_type] = data["count"]
            group = f.create_group(f"PartType{part_type}")
            for name, values in data.items():
                if name != "count":
                    group.create_dataset(name, data=values)
        hdr = f.create_group("Header")
        for name, value in {**header, "NumPart_ThisFile": counts, "NumFilesPerSnapshot": 1}.items():
            hdr.attrs[name] = value
    return out


def halo_info(base_path: Path, snap: int, halo_id: int) -> dict[str, Any]:
    """The group-catalog entry as the API's info.json serves it (JSON numbers and lists)."""
    group = il.groupcat.loadSingle(str(base_path), snap, haloID=halo_id)
    return {name: np.asarray(value).tolist() for name, value in group.items()}


@pytest.fixture(scope="module")
def cutout_bytes(tng_base: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_cutout(tng_base, SNAP, HALO, tmp_path_factory.mktemp("cutout") / "cutout.hdf5").read_bytes()


@dataclass
class FakeApi:
    """What the local server serves and how it misbehaves; ``requests`` records what it was asked."""

    files: dict[str, bytes]
    info: dict[str, dict[str, Any]]
    drop_after_bytes: int = (
        0  # > 0: send only this many body bytes, then close, for the next ``drops`` replies
    )
    drops: int = 0
    honour_range: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # seconds a connection may idle: a stuck client cannot hold the server thread

    def log_message(self, format: str, *args: Any) -> None:  # quiet (and never logs headers)
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        api: FakeApi = self.server.api  # type: ignore[attr-defined]
        url = urllib.parse.urlsplit(self.path)
        api.requests.append({"path": url.path, "query": url.query, "range": self.headers.get("Range")})
        key = self.headers.get("api-key")
        if key is None:
            return self._reply(401, b'{"detail": "Authentication credentials were not provided."}')
        if key != KEY:
            return self._reply(403, b'{"detail": "Invalid API key."}')
        if url.path in api.info:
            body = json.dumps(api.info[url.path]).encode()
            return self._reply(200, body, {"Content-Type": "application/json"})
        if url.path not in api.files:
            return self._reply(404, b'{"detail": "Not found."}')
        body, status, extra = api.files[url.path], 200, {"ETag": '"v1"'}
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if wanted and api.honour_range:
            start = int(wanted.group(1))
            if start >= len(body):
                return self._reply(416, b"", {"Content-Range": f"bytes */{len(body)}"})
            extra["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            body, status = body[start:], 206
        if api.drops > 0 and api.drop_after_bytes > 0:
            api.drops -= 1
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **extra}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[: api.drop_after_bytes])
            self.close_connection = True  # the rest never comes: the client sees a short body
            return None
        return self._reply(status, body, extra)


@pytest.fixture
def fake_api(cutout_bytes: bytes, tng_base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """The local API server on 127.0.0.1 (an OS-chosen port), with $TNG_API_KEY set to the accepted key."""
    api = FakeApi(files={CUTOUT_PATH: cutout_bytes}, info={INFO_PATH: halo_info(tng_base, SNAP, HALO)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.api = api  # type: ignore[attr-defined]
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("TNG_API_KEY", KEY)
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def download(api: FakeApi, out: Path, **kwargs: Any) -> Path:
    options = {"base_url": api.base_url, "timeout_s": 10.0, "retry_wait_s": 0.0, **kwargs}
    return download_halo_cutout(SIM, SNAP, HALO, out, **options)


def test_cutout_url_names_fields_per_particle_type() -> None:
    url = cutout_url(
        "TNG300-1",
        84,
        12,
        fields={"gas": ["Coordinates", "Masses"], "bh": ["BH_Mass"]},
        base_url="https://x/api",
    )
    parts = urllib.parse.urlsplit(url)
    assert parts.path == "/api/TNG300-1/snapshots/84/halos/12/cutout.hdf5"
    assert urllib.parse.parse_qs(parts.query) == {"gas": ["Coordinates,Masses"], "bhs": ["BH_Mass"]}
    with pytest.raises(ValueError, match="'planets'"):
        cutout_url("TNG300-1", 84, 12, fields={"planets": ["Coordinates"]})


def test_download_gives_the_served_bytes(fake_api: FakeApi, cutout_bytes: bytes, tmp_path: Path) -> None:
    digest = hashlib.sha256(cutout_bytes).hexdigest()
    out = download(fake_api, tmp_path / "halo_0.hdf5", sha256=digest, chunk_bytes=4096)
    assert out.read_bytes() == cutout_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["halo_0.hdf5"]  # no .part left
    (request,) = fake_api.requests
    query = urllib.parse.parse_qs(request["query"])
    assert set(query) == {"gas", "dm", "stars", "bhs"}
    assert "Coordinates" in query["dm"][0].split(",")


def test_interrupted_download_resumes_to_the_right_checksum(
    fake_api: FakeApi, cutout_bytes: bytes, tmp_path: Path
) -> None:
    """The server drops the connection a third of the way in; the next call resumes with a Range request."""
    fake_api.drop_after_bytes, fake_api.drops = len(cutout_bytes) // 3, 1
    out = tmp_path / "halo_0.hdf5"
    digest = hashlib.sha256(cutout_bytes).hexdigest()
    with pytest.raises(TngApiError, match=r"interrupted.*call again to resume"):
        download(fake_api, out, sha256=digest, max_attempts=1, chunk_bytes=1000)
    part = tmp_path / "halo_0.hdf5.part"
    assert not out.exists()
    assert part.stat().st_size == len(cutout_bytes) // 3
    download(fake_api, out, sha256=digest, max_attempts=1, chunk_bytes=1000)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert [r["range"] for r in fake_api.requests] == [None, f"bytes={len(cutout_bytes) // 3}-"]
    assert not part.exists()


def test_dropped_connection_is_retried_within_one_call(
    fake_api: FakeApi, cutout_bytes: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_api.drop_after_bytes, fake_api.drops = 5000, 2
    out = download(fake_api, tmp_path / "halo_0.hdf5", max_attempts=3)
    assert out.read_bytes() == cutout_bytes
    assert [r["range"] for r in fake_api.requests] == [None, "bytes=5000-", "bytes=10000-"]
    assert "resuming from byte 5000" in caplog.text
    # the accepted key is in no log record (retries included) and in no file the client wrote
    assert KEY not in caplog.text
    assert all(KEY.encode() not in f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())


def test_server_that_ignores_range_restarts_the_file(
    fake_api: FakeApi, cutout_bytes: bytes, tmp_path: Path
) -> None:
    fake_api.drop_after_bytes, fake_api.drops, fake_api.honour_range = 7000, 1, False
    out = download(fake_api, tmp_path / "halo_0.hdf5", max_attempts=2)
    assert out.read_bytes() == cutout_bytes  # not the first 7000 bytes twice


def test_wrong_key_is_a_clear_error_without_the_key(
    fake_api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wr0ng-k3y-s3cret"
    monkeypatch.setenv("MY_TNG_KEY", wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TngApiError, match=r"\$MY_TNG_KEY \(HTTP 403") as info:
        download(fake_api, tmp_path / "halo_0.hdf5", api_key_env="MY_TNG_KEY")
    assert info.value.status == 403
    for text in (str(info.value), repr(info.value), caplog.text):
        assert wrong not in text
        assert KEY not in text
    assert list(tmp_path.iterdir()) == []


def test_missing_key_variable_fails_before_any_request(
    fake_api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TNG_API_KEY")
    with pytest.raises(TngApiError, match="TNG_API_KEY is not set"):
        download(fake_api, tmp_path / "halo_0.hdf5")
    assert fake_api.requests == []


def test_unknown_halo_is_a_404_error(fake_api: FakeApi, tmp_path: Path) -> None:
    with pytest.raises(TngApiError, match="404") as info:
        download_halo_cutout(SIM, SNAP, 99, tmp_path / "x.hdf5", base_url=fake_api.base_url, timeout_s=10)
    assert info.value.status == 404


def test_checksum_mismatch_deletes_the_download(fake_api: FakeApi, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differs from the expected 0000"):
        download(fake_api, tmp_path / "halo_0.hdf5", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_cutout_converts_like_the_snapshot_extraction(
    fake_api: FakeApi, tng_base: Path, tmp_path: Path
) -> None:
    """The cutout's ParticleSet equals load_tng_halo's for the same halo (float32 precision)."""
    path = download(fake_api, tmp_path / "halo_0.hdf5")
    group = fetch_halo_info(SIM, SNAP, HALO, base_url=fake_api.base_url, timeout_s=10)
    got = load_cutout_halo(path, snap=SNAP, halo_id=HALO, group=group)
    want = load_tng_halo(tng_base, SNAP, HALO)
    eps = float(np.finfo(np.float32).eps)
    for name, species in want.species().items():
        other = got.species()[name]
        assert len(other) == len(species), name
        scale = max(float(np.abs(species.pos_kpc).max(initial=0.0)), 1.0)
        np.testing.assert_allclose(other.pos_kpc, species.pos_kpc, rtol=0, atol=4 * eps * scale, err_msg=name)
        np.testing.assert_allclose(other.mass_msun, species.mass_msun, rtol=4 * eps, err_msg=name)
        assert other.fields.keys() == species.fields.keys(), name
        for key, values in species.fields.items():
            np.testing.assert_allclose(other.fields[key], values, rtol=4 * eps, err_msg=f"{name}/{key}")
    for name in ("gas", "dm", "stars", "bh"):
        assert len(getattr(want, name)) > 0, (
            f"the synthetic halo has no {name}: the comparison would be empty"
        )
    assert got.total_mass_msun == pytest.approx(want.total_mass_msun, rel=1e-6)
    for key in ("m200c_msun", "r200c_kpc", "redshift", "scale_factor", "hubble_h", "n_wind_cells_dropped"):
        assert got.attrs[key] == pytest.approx(want.attrs[key], rel=1e-6), key


def test_cutout_header_gaps_are_named_and_can_be_filled(
    cutout_bytes: bytes, tng_base: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cutout.hdf5"
    path.write_bytes(cutout_bytes)
    with h5py.File(path, "a") as f:
        mass_table = f["Header"].attrs["MassTable"]
        del f["Header"].attrs["MassTable"]
    group = halo_info(tng_base, SNAP, HALO)
    with pytest.raises(KeyError, match=r"cutout\.hdf5: Header lacks \['MassTable'\]"):
        load_cutout_halo(path, snap=SNAP, halo_id=HALO, group=group)
    filled = load_cutout_halo(path, snap=SNAP, halo_id=HALO, group=group, header={"MassTable": mass_table})
    assert len(filled.dm) > 0
    with pytest.raises(ValueError, match="GroupLenType"):
        load_cutout_halo(
            path, snap=SNAP, halo_id=1, group=halo_info(tng_base, SNAP, 1), header={"MassTable": mass_table}
        )
