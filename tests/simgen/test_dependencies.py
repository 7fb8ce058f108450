"""Corpus generation (`pip install simgen`) works without the train extra: no torch, scikit-learn or matplotlib."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

BLOCKER = textwrap.dedent('''
    import importlib.abc, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "sklearn", "matplotlib"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None
    sys.meta_path.insert(0, _Block())
''')


def test_corpus_side_imports_and_builds_without_train_dependencies(tmp_path):
    code = BLOCKER + textwrap.dedent(f'''
        import simgen, simgen.corpus, simgen.cli, simgen.registry
        bad = {{k: v for k, v in simgen.registry.available().items() if v != "ok"}}
        assert not bad, bad
        s = simgen.corpus.build("peaks-demo", 64, r"{tmp_path / 'p.zarr'}", chunk_rows=32, scheduler="synchronous")
        assert simgen.corpus.open(r"{tmp_path / 'p.zarr'}").complete
        for mod in ("torch", "sklearn", "matplotlib"):
            assert mod not in sys.modules, mod
        print("ok")
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
