"""First use of a named model: download into the cache, import once, reuse the imported .pt.

Layout: ``$STREAMSEG_CACHE`` (default ``~/.cache/streamseg``) ``/models/NAME/NAME.pt``, the
imported checkpoint; the downloaded folder (``src/``) is removed once the import succeeded. Every
file lands under a temporary name and is renamed into place only after its size and hash are
checked, so a partial or corrupted download is never used (nor left behind).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streamseg.cache import cache_root
from streamseg.errors import CheckpointError
from streamseg.models.registry import ModelEntry, ModelFile, Registry

TIMEOUT_S = 10.0  # connect / read timeout: without a network the answer comes within seconds
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadError(CheckpointError):
    """A model file could not be fetched (no network, dead URL, bad hash, truncated)."""


@dataclass
class ResolvedModel:
    entry: ModelEntry
    checkpoint: str | None  # the imported .pt (None: shipped, the config brings its checkpoint)
    config: str | None  # shipped: the config name to load
    downloaded: bool = False  # this call fetched and imported it


def checkpoint_path(name: str) -> Path:
    return cache_root() / "models" / name / f"{name}.pt"


def is_cached(entry: ModelEntry) -> bool:
    return entry.kind == "shipped" or checkpoint_path(entry.name).is_file()


def resolve_model(name: str, registry: Registry | None = None, progress: bool = True) -> ResolvedModel:
    """The checkpoint (or shipped config) for ``name``, downloading and importing it on first use."""
    entry = (registry or Registry.default()).get(name)
    if entry.kind == "shipped":
        return ResolvedModel(entry, None, entry.config)
    out = checkpoint_path(entry.name)
    if out.is_file():
        return ResolvedModel(entry, str(out), None)
    src = out.parent / "src"
    src.mkdir(parents=True, exist_ok=True)
    try:
        for f in entry.files:
            if entry.kind == "hub":
                _fetch_hub(entry, f, src)
            else:
                _fetch_url(entry, f, src, progress)
        if entry.format == "detectron2":
            from streamseg.weights_import.convert import import_detectron2

            import_detectron2(src / entry.files[0].names[0], out, classes=entry.classes,
                              input_short_side=entry.short_side)
        else:
            from streamseg.weights_import.convert import import_transformers

            import_transformers(src, out, input_short_side=entry.short_side)
    finally:  # nothing half-fetched stays: the next use starts clean
        shutil.rmtree(src, ignore_errors=True)
    return ResolvedModel(entry, str(out), None, downloaded=True)


def _offline_hint(entry: ModelEntry, what: str, reason: str) -> str:
    return (f"cannot download model {entry.name}: {what} ({reason}); without network fetch it "
            "(with the model's other files) into a folder yourself, then `streamseg weights import "
            "FOLDER -o OUT.pt` and run with --checkpoint OUT.pt")


def _fetch_url(entry: ModelEntry, f: ModelFile, folder: Path, progress: bool) -> None:
    assert f.url is not None
    dest = folder / f.names[0]
    try:
        download_url(f.url, dest, f.sha256, progress=progress)
    except DownloadError as exc:
        raise DownloadError(_offline_hint(entry, f.url, str(exc))) from None


def download_url(url: str, dest: Path, sha256: str | None, timeout: float = TIMEOUT_S,
                 progress: bool = True) -> None:
    """``url`` -> ``dest`` through a temporary file: renamed into place only when complete
    (Content-Length) and, if ``sha256`` is given, matching it. tqdm bar on a terminal."""
    from tqdm import tqdm

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        digest = hashlib.sha256()
        size = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                                                  disable=None if progress else True, leave=False) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise DownloadError(f"{exc.reason}") from None
        except (http.client.HTTPException, socket.timeout, OSError) as exc:
            raise DownloadError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        if total is not None and size != total:
            raise DownloadError(f"truncated: {size} of {total} bytes")
        if sha256 and digest.hexdigest() != sha256.lower():
            raise DownloadError(f"sha256 mismatch: got {digest.hexdigest()[:12]}..., expected {sha256[:12]}...")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _fetch_hub(entry: ModelEntry, f: ModelFile, folder: Path) -> None:
    """hf_hub_download into ``folder`` (HF_ENDPOINT and HF_HUB_OFFLINE honoured); the first of
    ``f.names`` the repo has. The file is hashed and compared with the registry's sha256 and,
    for LFS files, the hub's ETag (their sha256); a mismatch deletes it."""
    import huggingface_hub
    from huggingface_hub.errors import RemoteEntryNotFoundError

    assert entry.repo_id is not None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    where = f"{entry.repo_id}@{entry.revision}"
    last = ""
    for name in f.names:
        url = huggingface_hub.hf_hub_url(entry.repo_id, name, revision=entry.revision, endpoint=endpoint)
        try:
            meta = huggingface_hub.get_hf_file_metadata(url, timeout=TIMEOUT_S)
            path = Path(huggingface_hub.hf_hub_download(
                entry.repo_id, name, revision=entry.revision, local_dir=folder, endpoint=endpoint,
                etag_timeout=TIMEOUT_S))
        except RemoteEntryNotFoundError:  # a 404 from the hub: try the next accepted name
            last = f"{where} has no {name}"
            continue
        except Exception as exc:  # offline mode, connection refused, DNS, HTTP errors (httpx's own types)
            text = str(exc).strip()
            reason = f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__
            raise DownloadError(_offline_hint(entry, url, reason)) from None
        expected = [h for h in (f.sha256, meta.etag) if h and _SHA256.fullmatch(h.lower())]
        if expected:
            got = _sha256_file(path)
            if any(got != h.lower() for h in expected):
                path.unlink(missing_ok=True)
                raise DownloadError(_offline_hint(entry, url, f"sha256 mismatch: got {got[:12]}..., "
                                                  f"expected {expected[0][:12]}..."))
        return
    raise DownloadError(_offline_hint(entry, f"one of {', '.join(f.names)}", last or "not found"))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
