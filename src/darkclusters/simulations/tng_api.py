"""IllustrisTNG public web API: halo cutouts as an alternative input to the ~TB full snapshots.

A halo cutout (``{base}/{sim}/snapshots/{snap}/halos/{id}/cutout.hdf5?gas=...&dm=...``) holds the FoF group's
particles as ``PartTypeN`` groups and a ``Header``, in comoving code units — the layout of a snapshot chunk.
:func:`download_halo_cutout` fetches one with the API key from an environment variable (sent only in the
``api-key`` header, never logged, never written, never put in an error message), resumes an interrupted
transfer with an HTTP ``Range`` request from ``<out>.part``, checks the length and, when given, the SHA-256,
and renames the finished file into place atomically. :func:`load_cutout_halo` converts a cutout to the same
physical-unit :class:`~darkclusters.simulations.particles.ParticleSet` as
:func:`darkclusters.simulations.tng.load_tng_halo` (centred on ``GroupPos``, unwrapped, DM masses from
``MassTable[1]``, wind cells dropped). Standard library only (urllib).
API reference: https://www.tng-project.org/data/docs/api/.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from darkclusters.simulations.particles import ParticleSet
from darkclusters.simulations.tng import TNG_FIELDS, species_from_code_units
from darkclusters.simulations.units import (
    code_length_to_kpc,
    code_mass_to_msun,
    header_attrs,
)

__all__ = [
    "TNG_API_BASE",
    "TngApiError",
    "cutout_url",
    "download_halo_cutout",
    "fetch_halo_info",
    "load_cutout_halo",
    "sha256_file",
]

log = logging.getLogger(__name__)

TNG_API_BASE = "https://www.tng-project.org/api/"

#: Our species name → the API's cutout query key (black holes are ``bhs`` there).
_QUERY_KEYS = {"gas": "gas", "dm": "dm", "stars": "stars", "bh": "bhs"}
_PART_TYPES = {"gas": 0, "dm": 1, "stars": 4, "bh": 5}
_HEADER_KEYS = ("Time", "Redshift", "HubbleParam", "Omega0", "BoxSize")
_RETRY_STATUS = {429, 500, 502, 503, 504}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FIELD = re.compile(r"^[A-Za-z0-9_]+$")


class TngApiError(RuntimeError):
    """The TNG API refused or broke a request; ``status`` is the HTTP code (None for a network failure)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Transient(Exception):
    """A failure worth retrying (dropped connection, short body, 5xx); carries a message without the key."""


def cutout_url(
    sim: str,
    snap: int,
    halo_id: int,
    *,
    fields: Mapping[str, Sequence[str]] = TNG_FIELDS,
    base_url: str = TNG_API_BASE,
) -> str:
    """The halo cutout URL: ``{base}/{sim}/snapshots/{snap}/halos/{halo_id}/cutout.hdf5?gas=A,B&dm=C...``.

    fields: species (gas, dm, stars, bh) → snapshot field names to include; a species left out is not fetched.
    """
    if not _NAME.match(sim):
        raise ValueError(f"simulation name {sim!r} is not a TNG run name such as 'TNG300-1'")
    if int(snap) < 0 or int(halo_id) < 0:
        raise ValueError(f"snapshot {snap} and halo_id {halo_id} must be >= 0")
    query = {}
    for species, names in fields.items():
        if species not in _QUERY_KEYS:
            raise ValueError(f"unknown species {species!r} in fields (known: {sorted(_QUERY_KEYS)})")
        bad = [n for n in names if not _FIELD.match(n)]
        if bad or not names:
            raise ValueError(f"fields[{species!r}] = {list(names)!r}: give one or more snapshot field names")
        query[_QUERY_KEYS[species]] = ",".join(names)
    if not query:
        raise ValueError("fields is empty: name at least one species and its fields")
    path = f"{sim}/snapshots/{int(snap)}/halos/{int(halo_id)}/cutout.hdf5"
    return f"{base_url.rstrip('/')}/{path}?{urllib.parse.urlencode(query, safe=',')}"


def _api_key(env_var: str) -> str:
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise TngApiError(
            f"environment variable {env_var} is not set: put your TNG API key there "
            "(www.tng-project.org/users/profile/); it is read only from the environment"
        )
    return key


def _open(url: str, key: str, env_var: str, headers: Mapping[str, str], timeout_s: float) -> Any:
    """GET ``url`` with the key header; map HTTP errors to TngApiError (never echoing the key)."""
    request = urllib.request.Request(url, headers={"api-key": key, **headers})
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        status, reason = exc.code, exc.reason
        exc.close()
        if status in (401, 403):
            raise TngApiError(
                f"TNG API refused the key in ${env_var} (HTTP {status} {reason}) for {url}: "
                "check the key on www.tng-project.org/users/profile/",
                status=status,
            ) from None
        if status == 404:
            raise TngApiError(f"TNG API: not found (HTTP 404) {url}", status=status) from None
        if status in _RETRY_STATUS:
            raise _Transient(f"HTTP {status} {reason} from {url}") from None
        if status == 416:
            raise  # handled by the caller (a resume past the end)
        raise TngApiError(f"TNG API: HTTP {status} {reason} for {url}", status=status) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Transient(f"{url}: {type(exc).__name__}: {exc}") from None


def fetch_halo_info(
    sim: str,
    snap: int,
    halo_id: int,
    *,
    api_key_env: str = "TNG_API_KEY",
    base_url: str = TNG_API_BASE,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """The group-catalog entry of one halo (``halos/{id}/info.json``): GroupPos, Group_M_Crit200, ... in code
    units; what :func:`load_cutout_halo` takes as ``group``."""
    url = f"{base_url.rstrip('/')}/{sim}/snapshots/{int(snap)}/halos/{int(halo_id)}/info.json"
    key = _api_key(api_key_env)
    try:
        with _open(url, key, api_key_env, {"Accept": "application/json"}, timeout_s) as resp:
            return dict(json.loads(resp.read().decode("utf-8")))
    except _Transient as exc:
        raise TngApiError(f"TNG API request failed: {exc}") from None


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk_bytes`` pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` or ``bytes */TOTAL`` → (START, TOTAL); None where absent or ``*``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _fetch_into(
    url: str, key: str, env_var: str, part: Path, meta: Path, chunk_bytes: int, timeout_s: float
) -> None:
    """Append the rest of ``url`` to ``part`` (a Range from its size), or rewrite it on a full reply."""
    offset = part.stat().st_size if part.exists() else 0
    state = json.loads(meta.read_text()) if offset and meta.exists() else {}
    if offset and state.get("url") != url:
        log.info("%s: left by another request, starting over", part)
        offset = 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state.get("validator"):
            headers["If-Range"] = state["validator"]  # the file changed on the server → a full 200 reply
    try:
        resp = _open(url, key, env_var, headers, timeout_s)
    except urllib.error.HTTPError as exc:  # 416: nothing after ``offset``
        _start, total = _content_range(exc.headers.get("Content-Range"))
        if total == offset:
            return  # the previous attempt had received every byte
        part.unlink(missing_ok=True)
        raise _Transient(f"{url}: server cannot resume at byte {offset} (HTTP 416); starting over") from None
    with resp:
        length = resp.headers.get("Content-Length")
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"{url}: server resumed at byte {start}, not {offset}; starting over")
            mode = "ab"
        elif resp.status == 200:
            if offset:
                log.info("%s: the server sent the whole file instead of resuming at byte %d", url, offset)
            mode, offset, total = "wb", 0, (int(length) if length else None)
        else:
            raise TngApiError(f"TNG API: unexpected HTTP {resp.status} for {url}", status=resp.status)
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        meta.write_text(json.dumps({"url": url, "validator": validator}))
        try:
            with open(part, mode) as f:
                while block := resp.read(chunk_bytes):
                    f.write(block)
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"{url}: connection lost ({type(exc).__name__}: {exc})") from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Transient(f"{url}: connection closed after {size} of {total} bytes")


def download_halo_cutout(
    sim: str,
    snap: int,
    halo_id: int,
    out_path: str | os.PathLike,
    *,
    fields: Mapping[str, Sequence[str]] = TNG_FIELDS,
    api_key_env: str = "TNG_API_KEY",
    base_url: str = TNG_API_BASE,
    chunk_bytes: int = 1 << 20,
    sha256: str | None = None,
    timeout_s: float = 60.0,
    max_attempts: int = 3,
    retry_wait_s: float = 5.0,
) -> Path:
    """Download one halo cutout to ``out_path``, resuming a partial ``<out_path>.part`` by HTTP Range.

    fields: species → snapshot fields (:data:`darkclusters.simulations.tng.TNG_FIELDS`, what
    :func:`load_cutout_halo` needs). The key is read from ``$api_key_env``. A dropped connection, a short
    body or an HTTP 5xx is retried ``max_attempts`` times in all (waiting ``retry_wait_s`` × attempt), each
    resuming where the last stopped; after the last, the ``.part`` file stays for the next call to resume.
    ``sha256`` (hex), when given, must match the finished file, else ValueError and the partial file is
    deleted. An existing ``out_path`` is complete (it appears only by atomic rename) and is returned after the
    same check.

    Raises TngApiError (``status`` 401/403: the key was refused) or ValueError (checksum).
    Returns ``out_path``.
    """
    out = Path(out_path)
    if chunk_bytes <= 0 or max_attempts < 1:
        raise ValueError(f"chunk_bytes={chunk_bytes} and max_attempts={max_attempts} must be >= 1")
    expected = sha256.lower() if sha256 is not None else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ValueError(f"sha256={sha256!r} is not a hex SHA-256 digest (64 hex digits)")
    if out.exists():
        if expected is not None and (actual := sha256_file(out, chunk_bytes)) != expected:
            raise ValueError(
                f"{out}: exists with sha256 {actual}, expected {expected}; delete it to download again"
            )
        log.info("%s exists: not downloading again", out)
        return out
    key = _api_key(api_key_env)
    url = cutout_url(sim, snap, halo_id, fields=fields, base_url=base_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    part, meta = out.with_name(out.name + ".part"), out.with_name(out.name + ".part.json")
    for attempt in range(1, max_attempts + 1):
        try:
            _fetch_into(url, key, api_key_env, part, meta, chunk_bytes, timeout_s)
            break
        except _Transient as exc:
            kept = part.stat().st_size if part.exists() else 0
            if attempt == max_attempts:
                raise TngApiError(
                    f"download interrupted after {attempt} attempt(s): {exc}; {part} keeps {kept} bytes, "
                    "call again to resume"
                ) from None
            log.warning("attempt %d/%d: %s; resuming from byte %d", attempt, max_attempts, exc, kept)
            time.sleep(retry_wait_s * attempt)
    actual = sha256_file(part, chunk_bytes)
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise ValueError(f"{url}: downloaded sha256 {actual} differs from the expected {expected}; deleted")
    os.replace(part, out)  # atomic: ``out`` exists only complete
    meta.unlink(missing_ok=True)
    log.info("%s: %d bytes, sha256 %s", out, out.stat().st_size, actual)
    return out


def _read_cutout(path: Path, header: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header (the file's, completed/overridden by ``header``) and raw code-unit fields per species."""
    with h5py.File(path, "r") as f:
        merged = {**(dict(f["Header"].attrs) if "Header" in f else {}), **(header or {})}
        raw: dict[str, Any] = {}
        for species, part_type in _PART_TYPES.items():
            group = f.get(f"PartType{part_type}")
            if group is None or "Coordinates" not in group or len(group["Coordinates"]) == 0:
                raw[species] = None
                continue
            missing = [name for name in TNG_FIELDS[species] if name not in group]
            if missing:
                raise KeyError(
                    f"{path}: PartType{part_type} ({species}) lacks {missing}; download with "
                    "fields=darkclusters.simulations.tng.TNG_FIELDS"
                )
            raw[species] = {name: group[name][()] for name in TNG_FIELDS[species]}
            raw[species]["count"] = len(group["Coordinates"])
    needed = [*_HEADER_KEYS, *(["MassTable"] if raw["dm"] is not None else [])]
    missing = [k for k in needed if k not in merged]
    if missing:
        raise KeyError(f"{path}: Header lacks {missing}; pass them as header= (from the snapshot's header)")
    return merged, raw


def load_cutout_halo(
    path: str | os.PathLike,
    *,
    snap: int,
    halo_id: int,
    group: Mapping[str, Any],
    header: Mapping[str, Any] | None = None,
) -> ParticleSet:
    """A halo cutout as the physical-unit ParticleSet that ``tng.load_tng_halo`` gives for the same halo.

    group: the halo's catalog entry in code units — ``GroupPos`` [ckpc/h] (the centre),
    ``Group_M_Crit200`` [1e10 Msun/h], ``Group_R_Crit200`` [ckpc/h], optionally ``GroupLenType`` (then the
    cutout's particle counts are checked against it); :func:`fetch_halo_info` returns it.
    header: AREPO Header attributes that override or complete the file's (Time, Redshift, HubbleParam,
    Omega0, BoxSize and, with DM, MassTable are needed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TNG cutout not found: {path}")
    missing = [k for k in ("GroupPos", "Group_M_Crit200", "Group_R_Crit200") if k not in group]
    if missing:
        raise KeyError(f"group (halo {halo_id}) lacks {missing}: pass the halo's info.json (fetch_halo_info)")
    hdr, raw = _read_cutout(path, header)
    if "GroupLenType" in group:
        expected = np.asarray(group["GroupLenType"], dtype=np.int64)
        for species, part_type in _PART_TYPES.items():
            got = 0 if raw[species] is None else int(raw[species]["count"])
            if got != expected[part_type]:
                raise ValueError(
                    f"{path}: {got} {species} particles but halo {halo_id} has GroupLenType[{part_type}]="
                    f"{expected[part_type]} (a cutout of another halo or snapshot?)"
                )
    a, h = float(hdr["Time"]), float(hdr["HubbleParam"])
    centre = np.asarray(group["GroupPos"], dtype=np.float64)
    species, n_wind = species_from_code_units(raw, hdr, centre)
    attrs = {
        "format": "tng",
        "snapshot": int(snap),
        "halo_id": int(halo_id),
        **header_attrs(hdr),
        "centre_ckpc_h": centre,
        "m200c_msun": float(code_mass_to_msun(float(group["Group_M_Crit200"]), h)),
        "r200c_kpc": float(code_length_to_kpc(float(group["Group_R_Crit200"]), a, h)),
        "n_wind_cells_dropped": n_wind,
        "smoothing_length_definition": "gas: radius of the sphere of the cell volume, (3m / 4 pi rho)^(1/3)",
        "source": "TNG web API halo cutout",
    }
    return ParticleSet(**species, attrs=attrs)
