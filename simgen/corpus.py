"""Build and read corpus stores (Zarr v3) through Dask.

Layout of a store (every array carries ``dimension_names``, so ``xarray.open_zarr`` names the dimensions)::

    x            (sample, *axis)   float32   the simulated measurements
    y            (sample, param)   float32   regression targets (NaN: not applicable to that sample)
    label        (sample,)         int16     class index (only when the recipe has a label)
    params       (sample, param_all) float64 every drawn parameter, nuisances included (categories as indices)
    <output>     (sample, *axis)             extra outputs the simulator declares (e.g. mask)
    <axis dims>  (dim,)            float64   axis coordinates, ``units`` attribute
    param, param_units, param_all, class     names along their dimensions
    _chunk_crc32 (chunk,)          int64     -1 until chunk k is written; then the CRC-32 of its bytes

Root attribute ``simgen`` holds the full recipe, its digest, seed, n, chunk_rows, versions, creation time and
``complete``.

Reproducibility: parameters are drawn in blocks of :data:`SEED_BLOCK` samples, block ``b`` from
``SeedSequence(recipe seed, spawn_key=(b,))``; each sample's noise comes from its own drawn seed.  A sample's bytes
therefore depend on (recipe, seed, index) alone: not on the worker count, chunk order, chunk size, corpus size or
interruptions.  A chunk is recorded done (its CRC written) only after all its arrays are written.
"""
from __future__ import annotations

import json
import math
import os
import platform
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from . import catalogs
from .errors import SimgenError, StoreError
from .lease import LEASE_NAME, Lease, read_lease
from .recipe import Recipe, load_recipe
from .simulator import Axis, Simulator

__all__ = ["build", "repair", "open", "Corpus", "BuildSummary", "simulate_rows", "SEED_BLOCK", "FORMAT",
           "default_chunk_rows", "positive_int"]

SEED_BLOCK = 16
FORMAT = "simgen-corpus/1"
_CHUNK_TARGET_BYTES = 32 * 2**20


# ---------------------------------------------------------------------------------------------- generation
def _block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))


def simulate_rows(sim: Simulator, seed: int, start: int, stop: int) -> tuple[dict, dict]:
    """Parameters and outputs of corpus rows ``start:stop`` (the engine's unit of work).

    Returns ``(params, outputs)``; realized parameters returned by the simulator are merged into ``params``.
    """
    if not 0 <= start < stop:
        raise ValueError(f"rows {start}:{stop}: expected 0 <= start < stop")
    b0, b1 = start // SEED_BLOCK, -(-stop // SEED_BLOCK)
    blocks = [sim.sample_params(SEED_BLOCK, _block_rng(seed, b)) for b in range(b0, b1)]
    lo, hi = start - b0 * SEED_BLOCK, stop - b0 * SEED_BLOCK
    params = {k: np.concatenate([blk[k] for blk in blocks])[lo:hi] for k in blocks[0]}
    outputs = sim.simulate_outputs(params, None)
    realized = outputs.pop("params", None) or {}
    params.update({k: np.asarray(v) for k, v in realized.items()})
    return params, outputs


def default_chunk_rows(sample_bytes: int, n: int) -> int:
    """About 32 MiB per chunk, a multiple of SEED_BLOCK, and at least ~8 chunks when n allows (parallelism).

    It depends on the sample size and n only (never on the worker count), so the store layout is the same
    whatever runs it.
    """
    rows = max(SEED_BLOCK, (_CHUNK_TARGET_BYTES // max(sample_bytes, 1)) // SEED_BLOCK * SEED_BLOCK)
    cap = max(SEED_BLOCK, -(-n // (8 * SEED_BLOCK)) * SEED_BLOCK)
    return int(min(rows, cap))


_SIM_CACHE: dict[str, Simulator] = {}
_SIM_USED: dict[str, dict] = {}      # recipe digest -> catalog files this process resolved for it
_SIM_LOCK = threading.RLock()
_DIGESTS: dict[tuple, str] = {}


def _simulator_for(recipe_dict: dict, digest: str, restart: bool = False) -> Simulator:
    """The simulator of a recipe, built once per process; every catalog file it resolves (while being built and
    while simulating) is recorded under its digest (:func:`_catalog_used`)."""
    with _SIM_LOCK:
        sim = _SIM_CACHE.get(digest)
        if sim is None or restart:
            for t in _SIM_USED.values():
                catalogs._stop_tracking(t)
            _SIM_CACHE.clear()
            _SIM_USED.clear()
            used = catalogs._start_tracking()
            try:
                sim = load_recipe(recipe_dict, validate=False).build()
            except BaseException:
                catalogs._stop_tracking(used)
                raise
            _SIM_CACHE[digest] = sim
            _SIM_USED[digest] = used
        return sim


def _catalog_used(digest: str) -> dict[str, str]:
    """``{catalog relative path: sha256}`` of the files this process resolved for recipe ``digest``."""
    with _SIM_LOCK:
        used = dict(_SIM_USED.get(digest, {}))
    out = {}
    for rel, path in sorted(used.items()):
        st = os.stat(path)
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in _DIGESTS:
            _DIGESTS[key] = catalogs.file_digest(path)
        out[rel] = _DIGESTS[key]
    return out


def _pin_threads() -> None:
    """One thread for numba/BLAS inside a corpus task: parallelism comes from the Dask workers."""
    try:
        import numba
        if numba.get_num_threads() != 1:
            numba.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass


def _chunk_arrays(sim: Simulator, params: dict, outputs: dict) -> dict[str, np.ndarray]:
    arrays = {"x": np.ascontiguousarray(outputs["x"], dtype=np.float32),
              "y": sim.targets_array(params).astype(np.float32),
              "params": sim.params_array(params).astype(np.float64)}
    if sim.classes:
        arrays["label"] = np.asarray(params["label"], dtype=np.int16)
    for name, spec in sim.OUTPUTS.items():
        arrays[name] = np.ascontiguousarray(outputs[name], dtype=spec.dtype)
    return arrays


def _crc(arrays: dict[str, np.ndarray]) -> int:
    crc = 0
    for name in sorted(arrays):
        flat = np.ascontiguousarray(arrays[name]).reshape(-1).view(np.uint8)  # zero-size arrays add nothing
        crc = zlib.crc32(flat, crc)
    return crc


class _InjectedCrash(BaseException):
    """Raised at a chosen step of a build (tests): the build stops as if the process had been killed there."""


#: step name at which a build stops as if killed (tests); the environment variable SIMGEN_CRASH_AT does the same
#: with ``os._exit``, a real kill of the process without clean-up
_CRASH_AT: str | None = None


def _step(name: str) -> None:
    if _CRASH_AT == name:
        raise _InjectedCrash(name)
    if os.environ.get("SIMGEN_CRASH_AT") == name:
        os._exit(137)


def _check_catalog(expected: dict, used: dict, where: str) -> None:
    for rel, sha in used.items():
        if rel in expected and expected[rel] != sha:
            raise StoreError(f"{where}: catalog file '{rel}' (sha256 {sha[:12]}) differs from the one the store "
                             f"was built with ({expected[rel][:12]}); every worker must see the same catalogs")


def _build_chunk(store: str, k: int, recipe_dict: dict, digest: str, n: int, chunk_rows: int,
                 catalog: dict | None = None) -> dict:
    """Dask task: simulate chunk ``k`` and write it; returns a small record."""
    t0 = time.perf_counter()
    _pin_threads()
    sim = _simulator_for(recipe_dict, digest)
    start, stop = k * chunk_rows, min(n, (k + 1) * chunk_rows)
    params, outputs = simulate_rows(sim, int(recipe_dict["seed"]), start, stop)
    arrays = _chunk_arrays(sim, params, outputs)
    used = _catalog_used(digest)
    if catalog is not None:
        _check_catalog(catalog, used, f"chunk {k} on {platform.node()}")
    t1 = time.perf_counter()
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    for name, arr in arrays.items():
        g[name][start:stop] = arr
        _step(f"chunk{k}:{name}")
    g["_chunk_crc32"][k] = _crc(arrays)  # the completion record: only after every array of the chunk is written
    _step(f"chunk{k}:crc")
    return {"chunk": k, "rows": stop - start, "nbytes": int(sum(a.nbytes for a in arrays.values())),
            "sim_s": t1 - t0, "write_s": time.perf_counter() - t1, "catalog": used}


# ---------------------------------------------------------------------------------------------- store
def _versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("simgen", "numpy", "scipy", "numba", "zarr", "dask", "distributed", "ase", "diffpy.structure"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _compressors(compression: str | None):
    if compression in (None, "none"):
        return None
    if compression == "zstd":
        return zarr.codecs.ZstdCodec(level=1)
    if compression == "blosc":
        return zarr.codecs.BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
    raise StoreError(f"compression '{compression}': expected none, zstd or blosc")


_CREATING = ".simgen-creating.json"
#: largest number of chunks a store may have (the completion records of 2**26 chunks take 512 MiB)
MAX_CHUNKS = 2**26
#: seconds without any live Dask worker after which a distributed build stops (``worker_timeout``)
DEFAULT_WORKER_TIMEOUT_S = 120.0


def _fs(store: str):
    import fsspec
    fs, root = fsspec.core.url_to_fs(store)
    return fs, root.rstrip("/")


def _is_url(store: str) -> bool:
    return "://" in store


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:,.1f} {unit}" if unit != "B" else f"{nbytes:.0f} B"
        nbytes /= 1000
    return f"{nbytes:.3g} EB"  # pragma: no cover


def _entries(store: str) -> list[str]:
    """Names at the store's root, the writer lease (and its temporary files) left out; [] when absent."""
    fs, root = _fs(store)
    try:
        names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [x for x in names if not x.startswith(LEASE_NAME)]


def _read_json(store: str, name: str) -> dict | None:
    fs, root = _fs(store)
    try:
        with fs.open(f"{root}/{name}", "rb") as fh:
            return json.loads(fh.read().decode())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        return {}


def _inspect(store: str) -> tuple[str, dict | None]:
    """``(state, info)``: ``absent`` (nothing there), ``creating`` (a creation that did not finish: info is its
    key), ``corpus`` (info: the store's attributes), ``damaged`` (simgen attributes but arrays missing) or
    ``foreign`` (something else)."""
    names = _entries(store)
    if not names:
        fs, root = _fs(store)
        if fs.exists(root) and not fs.isdir(root):
            return "foreign", None
        return "absent", None
    if _CREATING in names:
        return "creating", _read_json(store, _CREATING) or {}
    try:
        g = zarr.open_group(store, mode="r", use_consolidated=False)
        meta = dict(g.attrs).get("simgen")
    except Exception:  # any unreadable content is not ours to judge
        return "foreign", None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return "foreign", None
    if not all(a in g for a in ("x", "y", "params", "_chunk_crc32")):
        return "damaged", meta
    return "corpus", meta


def _wipe(store: str, keep: tuple[str, ...]) -> None:
    fs, root = _fs(store)
    for p in fs.ls(root, detail=False):
        name = str(p).rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(LEASE_NAME) or name in keep:
            continue
        fs.rm(p, recursive=True)


def _write_json(store: str, name: str, obj: dict) -> None:
    fs, root = _fs(store)
    with fs.open(f"{root}/{name}", "wb") as fh:
        fh.write(json.dumps(obj, sort_keys=True).encode())


def _create(store: str, key: dict, recipe: Recipe, sim: Simulator, n: int, chunk_rows: int,
            compression: str | None) -> zarr.Group:
    """Create the store's arrays.  A marker holding the resume key is written first and removed last, so a
    creation stopped at any instant is recognised (and redone) by the next run of the same build."""
    _write_json(store, _CREATING, key)
    _step("create:marker")
    _wipe(store, keep=(_CREATING,))
    _step("create:wiped")
    g = zarr.create_group(store, zarr_format=3, overwrite=False)
    _step("create:group")
    ax = sim.axis
    n_chunks = -(-n // chunk_rows)
    comp = _compressors(compression)
    sdims = ("sample", *ax.dims)
    g.create_array("x", shape=(n, *ax.shape), chunks=(chunk_rows, *ax.shape), dtype="float32",
                   compressors=comp, fill_value=np.nan, dimension_names=sdims,
                   attributes={"units": sim.x_units, "long_name": sim.x_name})
    _step("create:x")
    ny = len(sim.param_names)
    g.create_array("y", shape=(n, ny), chunks=(chunk_rows, max(ny, 1)), dtype="float32", compressors=None,
                   fill_value=np.nan, dimension_names=("sample", "param"),
                   attributes={"long_name": "regression targets", "names": list(sim.param_names),
                               "units": list(sim.param_units)})
    _step("create:y")
    npa = len(sim.all_param_names)
    g.create_array("params", shape=(n, npa), chunks=(chunk_rows, max(npa, 1)), dtype="float64",
                   compressors=None, fill_value=np.nan, dimension_names=("sample", "param_all"),
                   attributes={"long_name": "all drawn parameters", "names": list(sim.all_param_names),
                               "units": [sim.PARAMS[p].units for p in sim.all_param_names]})
    _step("create:params")
    if sim.classes:
        g.create_array("label", shape=(n,), chunks=(chunk_rows,), dtype="int16", compressors=None,
                       fill_value=-1, dimension_names=("sample",),
                       attributes={"long_name": sim.label.name, "classes": list(sim.classes)})
        _strings(g, "class", sim.classes, "class")
        _step("create:label")
    for name, spec in sim.OUTPUTS.items():
        g.create_array(name, shape=(n, *ax.shape), chunks=(chunk_rows, *ax.shape), dtype=spec.dtype,
                       compressors=comp, fill_value=0, dimension_names=sdims,
                       attributes={"units": spec.units, "long_name": spec.doc or name})
    for dim, coord, unit, lname in zip(ax.dims, ax.coords, ax.units, ax.long_names or ax.dims):
        g.create_array(dim, data=np.asarray(coord, dtype=np.float64), dimension_names=(dim,),
                       attributes={"units": unit, "long_name": lname})
    _step("create:axis")
    _strings(g, "param", sim.param_names, "param")
    _strings(g, "param_units", sim.param_units, "param")
    _strings(g, "param_all", sim.all_param_names, "param_all")
    _step("create:names")
    g.create_array("_chunk_crc32", shape=(n_chunks,), chunks=(1,), dtype="int64", fill_value=-1,
                   compressors=None, dimension_names=("chunk",),
                   attributes={"long_name": "CRC-32 of each written chunk; -1 = not written yet"})
    _step("create:crc")
    meta = {
        "format": FORMAT, "complete": False, "simulator": sim.name, "simulator_version": key["simulator_version"],
        "catalog_files": dict(key["catalog_files"]),
        "recipe": recipe.to_dict(), "recipe_digest": recipe.digest(), "recipe_source": recipe.source,
        "seed": recipe.seed, "seed_block": SEED_BLOCK, "n": n, "chunk_rows": chunk_rows, "n_chunks": n_chunks,
        "compression": compression or "none", "axis": ax.to_dict(), "x_name": sim.x_name, "x_units": sim.x_units,
        "targets": list(sim.param_names), "target_units": list(sim.param_units), "classes": list(sim.classes),
        "label_name": sim.label.name if sim.label is not None else None, "params_all": list(sim.all_param_names),
        "outputs": {k: {"dtype": v.dtype, "units": v.units, "doc": v.doc} for k, v in sim.OUTPUTS.items()},
        "versions": _versions(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    g.attrs["simgen"] = meta
    _step("create:attrs")
    fs, root = _fs(store)
    fs.rm(f"{root}/{_CREATING}")
    _step("create:done")
    return g


def _strings(g: zarr.Group, name: str, values, dim: str) -> None:
    arr = g.create_array(name, shape=(len(values),), chunks=(max(len(values), 1),), dtype=str,
                         dimension_names=(dim,))
    if len(values):
        arr[:] = np.array(list(values), dtype=object)


def _store_str(store) -> str:
    return os.fspath(store) if isinstance(store, (str, os.PathLike)) else store


def _dir_size(path: str) -> int:
    p = Path(path)
    if not p.exists():
        return 0
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


@dataclass
class BuildSummary:
    store: str
    n: int
    chunk_rows: int
    n_chunks: int
    chunks_built: int
    rows_built: int
    seconds: float
    bytes_written: int
    store_bytes: int
    complete: bool

    @property
    def samples_per_s(self) -> float:
        return self.rows_built / self.seconds if self.seconds > 0 else float("nan")

    @property
    def mb_per_s(self) -> float:
        return self.bytes_written / 1e6 / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        state = "complete" if self.complete else "INCOMPLETE"
        return (f"{self.store}: {state}, {self.n} samples in {self.n_chunks} chunks of {self.chunk_rows}; "
                f"built {self.rows_built} samples ({self.chunks_built} chunks) in {self.seconds:.1f} s: "
                f"{self.samples_per_s:,.0f} samples/s, {self.mb_per_s:,.1f} MB/s; "
                f"store size {self.store_bytes / 1e6:,.1f} MB")


def build(recipe, n: int | None = None, store: str | os.PathLike = "corpus.zarr", *, chunk_rows: int | None = None,
          client=None, overwrite: bool = False, compression: str | None = None, progress: bool = True,
          scheduler: str | None = None, repair: bool = False, lease_stale_s: float | None = None,
          worker_timeout: float | None = None, check_space: bool = True) -> BuildSummary:
    """Build (or resume, or repair) the corpus of ``n`` samples of ``recipe`` in ``store``.

    Parameters
    ----------
    recipe : Recipe, str, path or dict
        What to simulate (see :func:`simgen.recipe.load_recipe`).
    n : int, optional
        Number of samples (default: the recipe's ``corpus.n``).
    store : str or path
        Local directory (made absolute) or fsspec URL of the Zarr v3 store.
    chunk_rows : int, optional
        Samples per chunk (default: about 32 MiB per chunk, see :func:`default_chunk_rows`).
    client : dask.distributed.Client, optional
        Cluster to run on; without one, Dask's default scheduler is used (``scheduler`` overrides it, e.g.
        ``"threads"`` or ``"synchronous"``).  This function never starts a cluster.
    overwrite : bool
        Replace a store that cannot be resumed (another recipe, n or chunking, changed simulator version or
        catalog files, not a simgen corpus).  A store whose writer lease a live writer holds is never touched.
    compression : {"none", "zstd", "blosc"}, optional
    repair : bool
        Re-check every written chunk against its CRC-32 first and rebuild those that fail.
    lease_stale_s : float, optional
        Seconds without heartbeat after which another writer's lease is taken over (see :mod:`simgen.lease`).
    worker_timeout : float, optional
        With a ``client``: stop (leaving a resumable store) when no worker has been alive for this many seconds
        (default :data:`DEFAULT_WORKER_TIMEOUT_S`).
    check_space : bool
        Refuse a local store whose estimated size exceeds the free disk space.

    Returns
    -------
    BuildSummary

    A store made by the same recipe, n, chunking, simulator version and catalog files is resumed: only missing
    chunks are built, and a store whose creation was interrupted is created again.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    n = positive_int(n if n is not None else recipe.corpus.get("n"), "n",
                     "a positive number of samples (give --n or corpus.n in the recipe)")
    rdict, digest = recipe.to_dict(), recipe.digest()
    sim = _simulator_for(rdict, digest, restart=True)
    # probe: one sample through the whole path, so a broken simulator fails before any store is touched
    probe_params, probe_out = simulate_rows(sim, recipe.seed, 0, 1)
    probe = _chunk_arrays(sim, probe_params, probe_out)
    if probe["x"].shape[1:] != sim.axis.shape:
        raise StoreError(f"simulator '{sim.name}' returned x of shape {probe['x'].shape[1:]}; its axis says "
                         f"{sim.axis.shape}")
    key = {"format": FORMAT, "recipe_digest": digest, "n": n, "simulator": sim.name,
           "simulator_version": str(sim.version), "catalog_files": _catalog_used(digest)}
    sample_bytes = sum(a[0].nbytes for a in probe.values())
    compression = compression or recipe.corpus.get("compression")
    if chunk_rows is None:
        chunk_rows = recipe.corpus.get("chunk_rows") or default_chunk_rows(sample_bytes, n)
    chunk_rows = min(positive_int(chunk_rows, "chunk_rows", "a positive integer"), n)
    n_chunks = -(-n // chunk_rows)
    if n_chunks > MAX_CHUNKS:
        raise StoreError(f"n: got {n} samples in chunks of {chunk_rows}, i.e. {n_chunks:,} chunks; expected at "
                         f"most {MAX_CHUNKS:,} chunks (fewer samples or larger --chunk-rows)")
    key["chunk_rows"] = chunk_rows
    store = _store_str(store)
    if not _is_url(store):
        store = os.path.abspath(store)
    state, info = _inspect(store)
    if state == "foreign" and not overwrite:
        raise StoreError(f"store '{store}' exists and it is not a simgen corpus; refusing to overwrite it "
                         "(use --overwrite / overwrite=True)")
    if check_space and not _is_url(store):
        _check_space(store, n, sample_bytes, probe, compression, info if state == "corpus" else None)

    lease = Lease(store, stale_after=lease_stale_s)
    lease.acquire()
    crashed = False
    try:
        _step("lease")
        if client is not None:
            _check_visible(client, store, lease)
        state, info = _inspect(store)  # again: the previous writer may have changed it
        g = None
        if state == "corpus":
            why = _resume_mismatch(info, key)
            if why is None:
                g = zarr.open_group(store, mode="r+", use_consolidated=False)
            elif not overwrite:
                raise StoreError(f"store '{store}' exists and {why}; refusing to resume it (use --overwrite / "
                                 "overwrite=True to rebuild it)")
        elif state == "creating":
            same = all(info.get(k) == key[k] for k in ("format", "recipe_digest", "n", "chunk_rows",
                                                         "simulator_version", "catalog_files"))
            if not same and not overwrite:
                raise StoreError(f"store '{store}': the interrupted creation of another build (recipe "
                                 f"{str(info.get('recipe_digest'))[:12]}, n={info.get('n')}) is in it; refusing "
                                 "to overwrite it (use --overwrite / overwrite=True)")
        elif state == "damaged" and not overwrite:
            raise StoreError(f"store '{store}' exists and it is damaged (arrays missing); refusing to overwrite it "
                             "(use --overwrite / overwrite=True)")
        elif state == "foreign" and not overwrite:
            raise StoreError(f"store '{store}' exists and it is not a simgen corpus; refusing to overwrite it "
                             "(use --overwrite / overwrite=True)")
        if g is None:
            g = _create(store, key, recipe, sim, n, chunk_rows, compression)

        crc = g["_chunk_crc32"][:]
        if repair:
            bad = Corpus(store, _allow_creating=True).verify([int(k) for k in np.flatnonzero(crc >= 0)])
            for k in bad:
                g["_chunk_crc32"][k] = -1
            crc[bad] = -1
        todo = [int(k) for k in np.flatnonzero(crc < 0)]
        t0 = time.perf_counter()
        records = _run_chunks(store, g, todo, rdict, digest, n, chunk_rows, sim.name, client, scheduler,
                              progress, lease, worker_timeout)
        seconds = time.perf_counter() - t0
        lease.check()
        complete = _finalize(store)
    except _InjectedCrash:
        crashed = True
        raise
    finally:
        if crashed:
            lease.stop_heartbeat()  # as a killed process would: the lease stays behind
        else:
            lease.release()
    return BuildSummary(store=store, n=n, chunk_rows=chunk_rows, n_chunks=n_chunks, chunks_built=len(records),
                        rows_built=sum(r["rows"] for r in records), seconds=seconds,
                        bytes_written=sum(r["nbytes"] for r in records),
                        store_bytes=_dir_size(store) if os.path.exists(store) else -1, complete=complete)


def repair(store: str | os.PathLike, **kw) -> BuildSummary:
    """Re-check every chunk of ``store`` against its CRC-32 and rebuild the bad or missing ones from the store's
    own recipe (keyword arguments as for :func:`build`)."""
    c = Corpus(store)
    return build(c.recipe, c.n, c.store, chunk_rows=c.chunk_rows, repair=True, **kw)


def positive_int(value: Any, field: str, expected: str) -> int:
    """``value`` as a positive integer: ints, integral floats and strings such as ``"1e6"`` are accepted."""
    v = value
    if isinstance(v, str):
        try:
            v = float(v.strip().replace("_", ""))
        except ValueError:
            raise StoreError(f"{field}: got {value!r}; expected {expected}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise StoreError(f"{field}: got {value!r}; expected {expected}")
    if isinstance(v, (float, np.floating)) and (not math.isfinite(v) or v != math.floor(v)):
        raise StoreError(f"{field}: got {value!r}; expected {expected}")
    if v < 1:
        raise StoreError(f"{field}: got {value!r}; expected {expected}")
    return int(v)


def _check_space(store: str, n: int, sample_bytes: int, probe: dict, compression: str | None,
                 existing: dict | None) -> None:
    need = float(n) * sample_bytes
    how = "uncompressed"
    if compression not in (None, "none"):
        import numcodecs
        raw = np.ascontiguousarray(probe["x"]).tobytes()
        ratio = max(1.0, len(raw) / max(1, len(numcodecs.Zstd(level=1).encode(raw))))
        need = float(n) * (sample_bytes - probe["x"][0].nbytes + probe["x"][0].nbytes / ratio)
        how = f"{compression}, estimated from one sample"
    if existing is not None:  # a resumed store writes only what is missing
        need -= _dir_size(store)
    parent = Path(store)
    while not parent.exists():
        parent = parent.parent
    import shutil
    free = shutil.disk_usage(parent).free
    if need > free:
        raise StoreError(f"n: got {n:,} samples of {_human(sample_bytes)} each; the store would take about "
                         f"{_human(need)} ({how}) but only {_human(free)} is free at '{parent}'; expected a corpus "
                         "that fits (fewer samples, compression, or another --out)")


def _key_text(meta: dict) -> str:
    return f"n={meta.get('n')}, chunk_rows={meta.get('chunk_rows')}"


def _resume_mismatch(meta: dict, key: dict) -> str | None:
    """Why a store with attributes ``meta`` cannot be resumed by a build with ``key`` (None: it can)."""
    if meta.get("recipe_digest") != key["recipe_digest"]:
        return f"it was built from another recipe ({meta.get('recipe_source') or meta.get('simulator')})"
    if meta.get("n") != key["n"] or meta.get("chunk_rows") != key["chunk_rows"]:
        return f"it has {_key_text(meta)} (asked: {_key_text(key)})"
    changes = []
    if str(meta.get("simulator_version")) != key["simulator_version"]:
        changes.append(f"simulator '{key['simulator']}' version {meta.get('simulator_version')} -> "
                       f"{key['simulator_version']}")
    stored = meta.get("catalog_files")
    if stored is None:
        changes.append("it records no catalog file digests (built by an older simgen)")
    else:
        for rel, sha in sorted(stored.items()):
            try:
                now = catalogs.file_digest(catalogs.find(rel))
            except FileNotFoundError:
                changes.append(f"catalog file '{rel}' is no longer found")
                continue
            if now != sha:
                changes.append(f"catalog file '{rel}' changed (sha256 {sha[:12]} -> {now[:12]})")
        for rel in sorted(set(key["catalog_files"]) - set(stored)):
            changes.append(f"catalog file '{rel}' is now used and was not when the store was built")
    if changes:
        return "the physics changed since it was built: " + "; ".join(changes)
    return None


def _check_visible(client, store: str, lease: Lease) -> None:
    """Every worker must see this writer's lease at ``store`` (the same filesystem), before anything is built."""
    try:
        seen = client.run(_lease_token, store)
    except Exception as exc:  # pragma: no cover - a worker died meanwhile: the watchdog deals with it
        raise StoreError(f"store '{store}': could not ask the workers whether they see it ({exc})") from None
    blind = [w for w, tok in seen.items() if tok != lease.info.token]
    if blind:
        raise StoreError(f"store '{store}': not visible from worker(s) {', '.join(sorted(blind))} (they do not "
                         "see this build's lease there); expected a path on a filesystem every worker shares")


def _lease_token(store: str) -> str | None:
    cur = read_lease(store)
    return cur.token if cur is not None else None


def _run_chunks(store, g, todo, rdict, digest, n, chunk_rows, name, client, scheduler, progress, lease,
                worker_timeout) -> list[dict]:
    import dask

    records: list[dict] = []
    if not todo:
        return records
    meta = dict(g.attrs["simgen"])
    catalog = dict(meta.get("catalog_files") or {})
    last_check = [time.monotonic()]

    def done(rec: dict) -> None:
        records.append(rec)
        new = {k: v for k, v in rec.get("catalog", {}).items() if k not in catalog}
        _check_catalog(catalog, rec.get("catalog", {}), f"chunk {rec['chunk']}")
        if new:  # files the probe did not reach: recorded so that a resume checks them too
            catalog.update(new)
            m = dict(g.attrs["simgen"])
            m["catalog_files"] = dict(sorted(catalog.items()))
            g.attrs["simgen"] = m
        if bar is not None:
            bar.update(rec["rows"])
        if time.monotonic() - last_check[0] > 1.0:
            last_check[0] = time.monotonic()
            lease.check()

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(min(n, (k + 1) * chunk_rows) - k * chunk_rows for k in todo), unit="samples",
                   desc=f"simgen {name}", smoothing=0.05, dynamic_ncols=True)
    try:
        if client is not None:
            _run_distributed(client, store, todo, rdict, digest, n, chunk_rows, catalog, done, lease,
                             DEFAULT_WORKER_TIMEOUT_S if worker_timeout is None else float(worker_timeout))
        else:
            from dask.callbacks import Callback

            class _Done(Callback):
                def _posttask(self, key, result, dsk, state, worker_id):
                    if isinstance(result, dict) and "rows" in result:
                        done(result)

            tasks = [dask.delayed(_build_chunk, pure=False)(store, k, rdict, digest, n, chunk_rows, catalog,
                                                            dask_key_name=f"simgen-chunk-{k}") for k in todo]
            with _Done():
                dask.compute(*tasks, scheduler=scheduler)
    finally:
        if bar is not None:
            bar.close()
    return records


def _run_distributed(client, store, todo, rdict, digest, n, chunk_rows, catalog, done, lease, timeout) -> None:
    from distributed import wait
    futures = [client.submit(_build_chunk, store, k, rdict, digest, n, chunk_rows, catalog, pure=False,
                             key=f"simgen-{digest[:10]}-chunk-{k}") for k in todo]
    pending = set(futures)
    alive_at = [time.monotonic()]
    poll = max(0.1, min(2.0, timeout / 4))

    def watchdog() -> None:
        try:
            workers = len(client.nthreads())
        except Exception:  # the scheduler is unreachable: no worker either
            workers = 0
        now = time.monotonic()
        if workers:
            alive_at[0] = now
        elif now - alive_at[0] > timeout:
            raise StoreError(f"store '{store}': no Dask worker alive for {timeout:g} s (scheduler "
                             f"{getattr(client.scheduler, 'address', '?')}); stopped with {len(todo) - len(records)} "
                             f"of {len(todo)} chunks not built; the store is resumable: re-run the same command")

    def result(fut) -> dict:
        while True:  # a result held by a worker that died is recomputed elsewhere: wait, watching the workers
            try:
                return fut.result(timeout=poll)
            except TimeoutError:
                watchdog()
            except SimgenError:
                raise
            except Exception as exc:
                if type(exc).__name__ in ("KilledWorker", "CommClosedError", "CancelledError",
                                          "FutureCancelledError"):
                    raise StoreError(f"store '{store}': a chunk could not be built ({type(exc).__name__}: "
                                     f"{exc}); the store is left resumable: re-run the same command") from None
                raise

    records: list = []
    try:
        while pending:
            try:
                res = wait(pending, timeout=poll, return_when="FIRST_COMPLETED")
                finished, pending = set(res.done), set(res.not_done)
            except TimeoutError:
                finished = set()
            for fut in finished:
                rec = result(fut)
                records.append(rec)
                done(rec)
            watchdog()
    finally:
        for fut in futures:
            fut.cancel()


def _finalize(store: str) -> bool:
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    crc = g["_chunk_crc32"][:]
    if (crc < 0).any():
        return False
    meta = dict(g.attrs["simgen"])
    if not meta.get("complete"):
        meta["complete"] = True
        meta["completed"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        g.attrs["simgen"] = meta
        _step("finalize:attrs")
    try:  # the consolidated metadata must say what the store's own attributes say
        cons = dict(zarr.open_group(store, mode="r", use_consolidated=True).attrs).get("simgen")
    except Exception:
        cons = None
    if cons != meta:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated metadata is a zarr-python extension to v3: wanted here
            zarr.consolidate_metadata(store)
    _step("finalize:consolidated")
    return True


# ---------------------------------------------------------------------------------------------- reading
class Corpus:
    """Read access to a corpus store: arrays (zarr, lazy), recipe, axis, names and completeness."""

    def __init__(self, store: str | os.PathLike, _allow_creating: bool = False):
        self.store = _store_str(store)
        try:
            self.group = zarr.open_group(self.store, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
            if not _allow_creating and _CREATING in _entries(self.store):
                raise StoreError(f"store '{self.store}': its creation was interrupted; re-run the same "
                                 "`simgen generate` command to finish it") from None
            raise StoreError(f"store '{self.store}': not found (expected a simgen corpus directory)") from exc
        except Exception as exc:
            raise StoreError(f"store '{self.store}': unreadable ({type(exc).__name__}: {exc})") from None
        if not _allow_creating and _CREATING in _entries(self.store):
            raise StoreError(f"store '{self.store}': its creation was interrupted; re-run the same "
                             "`simgen generate` command to finish it")
        meta = dict(self.group.attrs).get("simgen")
        if not meta or meta.get("format") != FORMAT:
            raise StoreError(f"store '{self.store}': not a simgen corpus (no '{FORMAT}' attributes)")
        self.meta: dict = meta
        for name in ("x", "y", "params", "_chunk_crc32"):
            if name not in self.group:
                raise StoreError(f"store '{self.store}': array '{name}' is missing; the store is damaged")

    # names and shapes
    n = property(lambda self: int(self.meta["n"]))
    chunk_rows = property(lambda self: int(self.meta["chunk_rows"]))
    n_chunks = property(lambda self: int(self.meta["n_chunks"]))
    simulator_name = property(lambda self: self.meta["simulator"])
    param_names = property(lambda self: tuple(self.meta["targets"]))
    param_units = property(lambda self: tuple(self.meta["target_units"]))
    classes = property(lambda self: tuple(self.meta["classes"]))
    label_name = property(lambda self: self.meta.get("label_name"))
    params_all = property(lambda self: tuple(self.meta["params_all"]))
    outputs = property(lambda self: tuple(self.meta.get("outputs", {})))

    @property
    def axis(self) -> Axis:
        return Axis.from_dict(self.meta["axis"])

    @property
    def recipe(self) -> Recipe:
        return load_recipe(self.meta["recipe"], validate=False)

    def simulator(self) -> Simulator:
        return self.recipe.build()

    @property
    def x(self) -> zarr.Array:
        return self.group["x"]

    @property
    def y(self) -> zarr.Array:
        return self.group["y"]

    @property
    def params(self) -> zarr.Array:
        return self.group["params"]

    @property
    def label(self) -> zarr.Array | None:
        return self.group["label"] if "label" in self.group else None

    def __getitem__(self, name: str) -> zarr.Array:
        return self.group[name]

    # completeness
    def chunk_crcs(self) -> np.ndarray:
        return zarr.open_group(self.store, mode="r", use_consolidated=False)["_chunk_crc32"][:]

    def missing_chunks(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(self.chunk_crcs() < 0)]

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete")) and not self.missing_chunks()

    @property
    def fraction_done(self) -> float:
        return float((self.chunk_crcs() >= 0).mean())

    def chunk_slice(self, k: int) -> slice:
        return slice(k * self.chunk_rows, min(self.n, (k + 1) * self.chunk_rows))

    def read_chunk(self, k: int) -> dict[str, np.ndarray]:
        sl = self.chunk_slice(k)
        names = ["x", "y", "params", *self.outputs] + (["label"] if self.label is not None else [])
        return {name: self.group[name][sl] for name in names}

    def verify_report(self, chunks=None) -> dict[int, str]:
        """``{chunk: reason}`` for every chunk that is missing, unreadable (truncated, undecodable) or whose
        bytes no longer match their recorded CRC-32; never raises on a damaged chunk."""
        try:
            crcs = self.chunk_crcs()
        except Exception as exc:
            raise StoreError(f"store '{self.store}': its chunk records (_chunk_crc32) are unreadable "
                             f"({type(exc).__name__}: {exc}); rebuild it with --overwrite") from None
        bad: dict[int, str] = {}
        for k in (range(self.n_chunks) if chunks is None else chunks):
            k = int(k)
            if crcs[k] < 0:
                bad[k] = "not written"
                continue
            try:
                got = _crc(self.read_chunk(k))
            except Exception as exc:  # truncated or garbled chunk files
                msg = str(exc).splitlines()[0] if str(exc) else ""
                bad[k] = f"unreadable ({type(exc).__name__}: {msg[:120]})"
                continue
            if got != crcs[k]:
                bad[k] = "CRC-32 mismatch"
        return bad

    def verify(self, chunks=None) -> list[int]:
        """Chunks that are missing, unreadable or whose bytes no longer match their recorded CRC-32."""
        return sorted(self.verify_report(chunks))

    def require_complete(self) -> "Corpus":
        missing = self.missing_chunks()
        if missing or not self.meta.get("complete"):
            raise StoreError(f"store '{self.store}': incomplete ({len(missing)} of {self.n_chunks} chunks missing); "
                             "re-run `simgen generate` with the same recipe to finish it")
        return self

    def to_xarray(self):
        import xarray as xr
        return xr.open_zarr(self.store, zarr_format=3)

    def summary(self) -> dict:
        out = {"store": self.store, "simulator": self.simulator_name, "n": self.n, "chunk_rows": self.chunk_rows,
               "n_chunks": self.n_chunks, "chunks_done": int(self.n_chunks - len(self.missing_chunks())),
               "complete": self.complete, "seed": self.meta["seed"], "axis": {
                   d: [float(c[0]), float(c[-1]), len(c), u] for d, c, u in
                   zip(self.axis.dims, self.axis.coords, self.axis.units)},
               "targets": dict(zip(self.param_names, self.param_units)), "classes": list(self.classes),
               "created": self.meta.get("created"), "versions": self.meta.get("versions"),
               "simulator_version": self.meta.get("simulator_version"),
               "catalog_files": self.meta.get("catalog_files")}
        return out

    def __repr__(self):
        state = "complete" if self.complete else f"{self.fraction_done:.0%} done"
        return f"<Corpus {self.store}: {self.simulator_name}, n={self.n}, {state}>"


def open(store: str | os.PathLike) -> Corpus:  # noqa: A001 - mirrors xarray/zarr naming
    """Open a corpus store for reading."""
    return Corpus(store)


def content_digest(store: str | os.PathLike) -> str:
    """SHA-256 over every array's bytes and the recipe: equal for byte-identical corpora, whatever their
    creation time."""
    import hashlib
    c = Corpus(store)
    h = hashlib.sha256(json.dumps(c.meta["recipe"], sort_keys=True).encode())
    for name in sorted(c.group.array_keys()):
        arr = c.group[name][...]
        h.update(name.encode())
        h.update(np.ascontiguousarray(arr).tobytes() if arr.dtype.kind != "T" and arr.dtype != object
                 else "\x00".join(map(str, arr.tolist())).encode())
    return h.hexdigest()
