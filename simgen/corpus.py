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
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .errors import StoreError
from .recipe import Recipe, load_recipe
from .simulator import Axis, Simulator

__all__ = ["build", "open", "Corpus", "BuildSummary", "simulate_rows", "SEED_BLOCK", "FORMAT",
           "default_chunk_rows"]

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


def _simulator_for(recipe_dict: dict, digest: str) -> Simulator:
    sim = _SIM_CACHE.get(digest)
    if sim is None:
        sim = load_recipe(recipe_dict, validate=False).build()
        _SIM_CACHE.clear()
        _SIM_CACHE[digest] = sim
    return sim


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
        crc = zlib.crc32(memoryview(np.ascontiguousarray(arrays[name])).cast("B"), crc)
    return crc


def _build_chunk(store: str, k: int, recipe_dict: dict, digest: str, n: int, chunk_rows: int) -> dict:
    """Dask task: simulate chunk ``k`` and write it; returns a small record."""
    t0 = time.perf_counter()
    _pin_threads()
    sim = _simulator_for(recipe_dict, digest)
    start, stop = k * chunk_rows, min(n, (k + 1) * chunk_rows)
    params, outputs = simulate_rows(sim, int(recipe_dict["seed"]), start, stop)
    arrays = _chunk_arrays(sim, params, outputs)
    t1 = time.perf_counter()
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    for name, arr in arrays.items():
        g[name][start:stop] = arr
    g["_chunk_crc32"][k] = _crc(arrays)  # the completion record: only after every array of the chunk is written
    return {"chunk": k, "rows": stop - start, "nbytes": int(sum(a.nbytes for a in arrays.values())),
            "sim_s": t1 - t0, "write_s": time.perf_counter() - t1}


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


def _create(store: str, recipe: Recipe, sim: Simulator, probe: dict, n: int, chunk_rows: int,
            compression: str | None) -> zarr.Group:
    g = zarr.open_group(store, mode="w", zarr_format=3)
    ax = sim.axis
    n_chunks = -(-n // chunk_rows)
    comp = _compressors(compression)
    meta = {
        "format": FORMAT, "complete": False, "simulator": sim.name, "simulator_version": sim.version,
        "recipe": recipe.to_dict(), "recipe_digest": recipe.digest(), "recipe_source": recipe.source,
        "seed": recipe.seed, "seed_block": SEED_BLOCK, "n": n, "chunk_rows": chunk_rows, "n_chunks": n_chunks,
        "compression": compression or "none", "axis": ax.to_dict(), "x_name": sim.x_name, "x_units": sim.x_units,
        "targets": list(sim.param_names), "target_units": list(sim.param_units), "classes": list(sim.classes),
        "label_name": sim.label.name if sim.label is not None else None, "params_all": list(sim.all_param_names),
        "outputs": {k: {"dtype": v.dtype, "units": v.units, "doc": v.doc} for k, v in sim.OUTPUTS.items()},
        "versions": _versions(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    g.attrs["simgen"] = meta
    sdims = ("sample", *ax.dims)
    g.create_array("x", shape=(n, *ax.shape), chunks=(chunk_rows, *ax.shape), dtype="float32",
                   compressors=comp, fill_value=np.nan, dimension_names=sdims,
                   attributes={"units": sim.x_units, "long_name": sim.x_name})
    ny = len(sim.param_names)
    g.create_array("y", shape=(n, ny), chunks=(chunk_rows, max(ny, 1)), dtype="float32", compressors=None,
                   fill_value=np.nan, dimension_names=("sample", "param"),
                   attributes={"long_name": "regression targets", "names": list(sim.param_names),
                               "units": list(sim.param_units)})
    npa = len(sim.all_param_names)
    g.create_array("params", shape=(n, npa), chunks=(chunk_rows, max(npa, 1)), dtype="float64",
                   compressors=None, fill_value=np.nan, dimension_names=("sample", "param_all"),
                   attributes={"long_name": "all drawn parameters", "names": list(sim.all_param_names),
                               "units": [sim.PARAMS[p].units for p in sim.all_param_names]})
    if sim.classes:
        g.create_array("label", shape=(n,), chunks=(chunk_rows,), dtype="int16", compressors=None,
                       fill_value=-1, dimension_names=("sample",),
                       attributes={"long_name": sim.label.name, "classes": list(sim.classes)})
        _strings(g, "class", sim.classes, "class")
    for name, spec in sim.OUTPUTS.items():
        g.create_array(name, shape=(n, *ax.shape), chunks=(chunk_rows, *ax.shape), dtype=spec.dtype,
                       compressors=comp, fill_value=0, dimension_names=sdims,
                       attributes={"units": spec.units, "long_name": spec.doc or name})
    for dim, coord, unit, lname in zip(ax.dims, ax.coords, ax.units, ax.long_names or ax.dims):
        g.create_array(dim, data=np.asarray(coord, dtype=np.float64), dimension_names=(dim,),
                       attributes={"units": unit, "long_name": lname})
    _strings(g, "param", sim.param_names, "param")
    _strings(g, "param_units", sim.param_units, "param")
    _strings(g, "param_all", sim.all_param_names, "param_all")
    g.create_array("_chunk_crc32", shape=(n_chunks,), chunks=(1,), dtype="int64", fill_value=-1,
                   compressors=None, dimension_names=("chunk",),
                   attributes={"long_name": "CRC-32 of each written chunk; -1 = not written yet"})
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
          scheduler: str | None = None) -> BuildSummary:
    """Build (or resume) the corpus of ``n`` samples of ``recipe`` in ``store``.

    ``client``: a ``dask.distributed.Client`` to run on; without one, Dask's current default scheduler is used
    (``scheduler`` overrides it, e.g. ``"threads"`` or ``"synchronous"``).  This function never starts a
    cluster.  An existing store from the same recipe, n and chunking is resumed (only missing chunks are built);
    one from anything else is refused unless ``overwrite``.
    """
    import dask

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    sim = recipe.build()
    n = int(n if n is not None else recipe.corpus.get("n", 0))
    if n < 1:
        raise StoreError(f"n: got {n}; expected a positive number of samples (give --n or corpus.n in the recipe)")
    # probe: one sample through the whole path, so a broken simulator fails before any store is touched
    probe_params, probe_out = simulate_rows(sim, recipe.seed, 0, 1)
    probe = _chunk_arrays(sim, probe_params, probe_out)
    if probe["x"].shape[1:] != sim.axis.shape:
        raise StoreError(f"simulator '{sim.name}' returned x of shape {probe['x'].shape[1:]}; its axis says "
                         f"{sim.axis.shape}")
    sample_bytes = sum(a[0].nbytes for a in probe.values())
    compression = compression or recipe.corpus.get("compression")
    if chunk_rows is None:
        chunk_rows = recipe.corpus.get("chunk_rows") or default_chunk_rows(sample_bytes, n)
    chunk_rows = int(min(chunk_rows, n))
    if chunk_rows < 1:
        raise StoreError(f"chunk_rows: got {chunk_rows}; expected a positive integer")
    store = _store_str(store)
    n_chunks = -(-n // chunk_rows)

    g = None
    try:
        existing = zarr.open_group(store, mode="r", use_consolidated=False)
        meta = dict(existing.attrs).get("simgen")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError, ValueError):
        existing, meta = None, None
    if existing is not None:
        same = (meta is not None and meta.get("recipe_digest") == recipe.digest() and meta.get("n") == n
                and meta.get("chunk_rows") == chunk_rows and meta.get("format") == FORMAT)
        intact = same and "_chunk_crc32" in existing and "x" in existing
        if intact:
            g = zarr.open_group(store, mode="r+", use_consolidated=False)
        elif not overwrite:
            if meta is None:
                why = "it is not a simgen corpus"
            elif meta.get("recipe_digest") != recipe.digest():
                why = f"it was built from another recipe ({meta.get('recipe_source') or meta.get('simulator')})"
            elif not same:
                why = (f"it has n={meta.get('n')}, chunk_rows={meta.get('chunk_rows')} "
                       f"(asked: n={n}, chunk_rows={chunk_rows})")
            else:
                why = "it is damaged (arrays missing)"
            raise StoreError(f"store '{store}' exists and {why}; refusing to overwrite it (use --overwrite / "
                             "overwrite=True)")
    if g is None:
        g = _create(store, recipe, sim, probe, n, chunk_rows, compression)

    crc = g["_chunk_crc32"][:]
    todo = [int(k) for k in np.flatnonzero(crc < 0)]
    rdict = recipe.to_dict()
    digest = recipe.digest()
    t0 = time.perf_counter()
    records: list[dict] = []
    if todo:
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=sum(min(n, (k + 1) * chunk_rows) - k * chunk_rows for k in todo), unit="samples",
                       desc=f"simgen {sim.name}", smoothing=0.05, dynamic_ncols=True)
        if client is not None:
            from distributed import as_completed
            futures = [client.submit(_build_chunk, store, k, rdict, digest, n, chunk_rows, pure=False,
                                     key=f"simgen-{digest[:10]}-chunk-{k}") for k in todo]
            try:
                for fut in as_completed(futures):
                    rec = fut.result()
                    records.append(rec)
                    if bar is not None:
                        bar.update(rec["rows"])
            finally:
                for fut in futures:
                    fut.cancel()
        else:
            from dask.callbacks import Callback

            class _Bar(Callback):
                def _posttask(self, key, result, dsk, state, worker_id):
                    if isinstance(result, dict) and "rows" in result:
                        records.append(result)
                        if bar is not None:
                            bar.update(result["rows"])

            tasks = [dask.delayed(_build_chunk, pure=False)(store, k, rdict, digest, n, chunk_rows,
                                                            dask_key_name=f"simgen-chunk-{k}") for k in todo]
            with _Bar():
                dask.compute(*tasks, scheduler=scheduler)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    complete = _finalize(store)
    return BuildSummary(store=store, n=n, chunk_rows=chunk_rows, n_chunks=n_chunks, chunks_built=len(records),
                        rows_built=sum(r["rows"] for r in records), seconds=seconds,
                        bytes_written=sum(r["nbytes"] for r in records),
                        store_bytes=_dir_size(store) if os.path.exists(store) else -1, complete=complete)


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
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated metadata is a zarr-python extension to v3: wanted here
            zarr.consolidate_metadata(store)
    return True


# ---------------------------------------------------------------------------------------------- reading
class Corpus:
    """Read access to a corpus store: arrays (zarr, lazy), recipe, axis, names and completeness."""

    def __init__(self, store: str | os.PathLike):
        self.store = _store_str(store)
        try:
            self.group = zarr.open_group(self.store, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
            raise StoreError(f"store '{self.store}': not found (expected a simgen corpus directory)") from exc
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

    def verify(self, chunks=None) -> list[int]:
        """Chunks whose bytes no longer match their recorded CRC (missing chunks included)."""
        crcs = self.chunk_crcs()
        bad = []
        for k in (range(self.n_chunks) if chunks is None else chunks):
            if crcs[k] < 0 or _crc(self.read_chunk(k)) != crcs[k]:
                bad.append(int(k))
        return bad

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
               "created": self.meta.get("created"), "versions": self.meta.get("versions")}
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
