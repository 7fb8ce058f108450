"""The main job's report: ``report.md`` (Markdown) and ``index.html`` (a self-contained, rendered page) from the
summary ``simtrain demo`` collects.

What a reader gets: a header (when, how long, on what machine, package versions, seeds), one table per stage with
every column (every target of every corpus and run), each figure with a caption that says what to look for, the
acceptance table coloured by verdict, and every study with its own verdict: a failed or degenerate study is shown
as FAIL with its reason, never as a plain number.
"""
from __future__ import annotations

import html
import json
import math
import platform
from pathlib import Path

__all__ = ["write_report", "study_verdict", "caption_for", "markdown_table", "html_table"]


# ---------------------------------------------------------------------------------------------- helpers
def _num(v, fmt: str = ".4g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan"
    if isinstance(v, (int, float)):
        return format(v, fmt)
    return str(v)


def markdown_table(head: list[str], rows: list[list]) -> list[str]:
    """Markdown lines of a table (cells converted with str, pipes escaped)."""
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    out = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return out


def html_table(head: list[str], rows: list[list], row_class: list[str] | None = None) -> str:
    """An HTML table; ``row_class`` gives each row a CSS class (pass / fail / skip)."""
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CAPTIONS = (
    ("corpus-", "Six simulated samples of the corpus with their labels. Look for shapes, ranges and noise like "
                "those of the measurements the network will read."),
    ("learning", "Training and validation loss per epoch (log scale). The two should fall together; a validation "
                 "curve that rises while training falls means over-fitting."),
    ("parity", "Predicted against true value on held-out simulated samples, one panel per target (R² in the "
               "title). Points on the dashed diagonal are exact; spread is the error, bends are bias."),
    ("confusion", "Confusion matrix on held-out samples (rows: true class, columns: predicted; counts). "
                  "Off-diagonal cells show which classes the network confuses."),
    ("validation/", "A real measurement (black) prepared onto the model's axis, and the simulator's output at the "
                    "predicted parameters (red, least-squares scaled). Agreement of line positions and shapes is "
                    "what to look for."),
    ("augment", "Augmentation study: error of the per-target regressors trained on the experimental set alone and "
                "with VAE/CVAE-generated spectra, and the generated spectra beside real ones."),
    ("adapt", "Adaptation study: simulated, VAE-translated and 'measured' spectra, and the inverse network's error "
              "before and after adaptation."),
    ("nested", "Nested VAE: micrographs generated from irradiation conditions beside simulated ones at the same "
               "conditions. Void sizes and densities should match; a grey, featureless image is a failure."),
)


def caption_for(path: str) -> str:
    """A caption saying what a figure shows and what to look for (from its file name)."""
    low = path.lower()
    for key, cap in _CAPTIONS:
        if key in low:
            return cap
    return ""


def _walk_verdicts(obj, found: list):
    if isinstance(obj, dict):
        if "verdict" in obj and isinstance(obj["verdict"], str):
            found.append((obj["verdict"], obj.get("reason", "")))
        for v in obj.values():
            _walk_verdicts(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _walk_verdicts(v, found)


def _has_nan(obj) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_nan(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_nan(v) for v in obj)
    return False


def study_verdict(st: dict) -> tuple[str, str]:
    """('PASS'|'FAIL', reason) of a study entry of the summary, by the study's own measure.

    A study that raised, exited non-zero, reported a FAIL verdict, or whose results hold NaN without a verdict is
    FAIL; a study that reports no verdict at all is 'NO VERDICT' (shown, never as a pass)."""
    if "error" in st:
        return "FAIL", st["error"]
    if st.get("rc", 0) != 0:
        return "FAIL", f"exit status {st['rc']}"
    found: list = []
    _walk_verdicts(st.get("results", {}), found)
    fails = [r for v, r in found if v.upper() != "PASS"]
    if fails:
        return "FAIL", "; ".join(str(r) for r in fails if r) or "the study reported FAIL"
    if found:
        return "PASS", "; ".join(str(r) for v, r in found if r)
    if _has_nan(st.get("results", {})):
        return "FAIL", "results hold NaN (degenerate output)"
    skipped = [r["skipped"] for r in (st.get("results") or {}).values() if isinstance(r, dict) and r.get("skipped")]
    if skipped:
        return "SKIPPED", "; ".join(str(w) for w in skipped)
    return "NO VERDICT", "the study reported no verdict of its own"


def _machine() -> str:
    import os
    return f"{platform.node() or 'host'}: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _versions() -> dict:
    from .run import versions
    return versions()


# ---------------------------------------------------------------------------------------------- sections
def _corpus_rows(s):
    head = ["corpus", "recipe", "simulator", "n", "seed", "samples/s", "store MB", "targets", "classes"]
    rows, cls = [], []
    for k, c in s.get("corpora", {}).items():
        if "skipped" in c or "error" in c:
            rows.append([k, c.get("recipe", ""), "skipped: " + str(c.get("skipped") or c.get("error")), "", "", "", "",
                         "", ""])
            cls.append("skip")
            continue
        rows.append([k, c["recipe"], c["simulator"], c["n"], c.get("seed", ""), _num(c.get("samples_per_s"), ",.0f"),
                     _num(c.get("store_mb"), ".1f"), ", ".join(c.get("targets", [])),
                     ", ".join(c.get("classes", [])) or "-"])
        cls.append("")
    return head, rows, cls


def _run_rows(s):
    head = ["run", "model", "corpus", "target", "R²", "MAE", "mean-predictor MAE", "class accuracy", "macro F1"]
    rows, cls = [], []
    for k, r in s.get("runs", {}).items():
        if "metrics" not in r:
            rows.append([k, "", "", "failed" if "error" in r else "skipped", r.get("error") or r.get("skipped", ""),
                         "", "", "", ""])
            cls.append("fail" if "error" in r else "skip")
            continue
        m = r["metrics"].get("test") or r["metrics"].get("val") or r["metrics"]
        reg = m.get("regression") or {}
        cl = m.get("classification") or {}
        first = True
        for name, v in reg.items():
            if not isinstance(v, dict):
                continue
            rows.append([k if first else "", r["model"] if first else "", r["corpus"] if first else "", name,
                         _num(v.get("r2"), ".3f"), _num(v.get("mae")), _num(v.get("mean_mae")),
                         _num(cl.get("accuracy"), ".3f") if first and cl else "",
                         _num(cl.get("macro_f1"), ".3f") if first and cl else ""])
            cls.append("")
            first = False
        if first:
            rows.append([k, r["model"], r["corpus"], "(classification only)", "", "", "",
                         _num(cl.get("accuracy"), ".3f"), _num(cl.get("macro_f1"), ".3f")])
            cls.append("")
    return head, rows, cls


def _acc_rows(acc):
    head = ["file", "quantity", "predicted", "reference", "difference", "tolerance", "verdict", "source"]
    rows, cls = [], []
    for r in acc.get("rows", []):
        pred = r["pred"]
        if r["quantity"] == "class" and r.get("unc") is not None:
            pred = f"{pred} (p {r['unc']:.2f})"
        elif isinstance(pred, float):
            pred = _num(pred) + (f" ± {r['unc']:.2g}" if isinstance(r.get("unc"), float) and math.isfinite(r["unc"])
                                 else "")
        verdict = "-" if r["ok"] is None else ("PASS" if r["ok"] else "FAIL")
        rows.append([r["file"], r["quantity"], pred, f"{_num(r['ref'])} {r.get('units') or ''}".strip(),
                     _num(r.get("diff")), _num(r.get("tol")), verdict, r.get("note", "")])
        cls.append({"PASS": "pass", "FAIL": "fail"}.get(verdict, "skip"))
    return head, rows, cls


def _study_summary(res: dict) -> list[list]:
    """Flat (key, value) rows of a study's numeric results (first levels only, lists shortened)."""
    rows = []

    def walk(prefix, obj, depth):
        if len(rows) > 60:
            return
        if isinstance(obj, dict) and depth < 3:
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)
        elif isinstance(obj, (int, float, str, bool)) or obj is None:
            rows.append([prefix, _num(obj) if not isinstance(obj, str) else obj[:200]])
        elif isinstance(obj, list) and len(obj) <= 8 and all(isinstance(v, (int, float)) for v in obj):
            rows.append([prefix, ", ".join(_num(v) for v in obj)])
    walk("", res, 0)
    return rows


# ---------------------------------------------------------------------------------------------- report
def write_report(out: Path, s: dict) -> None:
    """Write ``out/report.md`` and ``out/index.html`` from the demo summary ``s``."""
    out = Path(out)
    meta = s.get("meta", {})
    vers = meta.get("versions") or _versions()
    machine = meta.get("machine") or _machine()
    header = [f"Plan: `{s.get('plan', '')}`", f"finished {meta.get('finished', '')}, total "
              f"{s.get('seconds', 0) / 60:.1f} min", f"machine: {machine}",
              "versions: " + ", ".join(f"{k} {v}" for k, v in vers.items())]
    md = ["# simgen main-job report", ""] + [f"- {h}" for h in header] + [""]
    parts = ["<h1>simgen main-job report</h1>", "<ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in header)
             + "</ul>"]
    if s.get("errors"):
        md += ["**Stages that failed:**", ""] + [f"- FAIL: {e}" for e in s["errors"]] + [""]
        parts.append('<div class="fail box"><b>Stages that failed</b><ul>' +
                     "".join(f"<li>{html.escape(str(e))}</li>" for e in s["errors"]) + "</ul></div>")

    def section(title, intro, table, figures):
        nonlocal md, parts
        head, rows, cls = table
        md += [f"## {title}", "", intro, ""] + markdown_table(head, rows) + [""]
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(intro)}</p>" + html_table(head, rows, cls))
        for f in figures:
            cap = caption_for(f)
            md += [f"![{Path(f).stem}]({f})", "", f"*{Path(f).name}*: {cap}", ""]
            parts.append(f'<figure><img src="{html.escape(f)}"><figcaption><b>{html.escape(Path(f).name)}</b>: '
                         f"{html.escape(cap)}</figcaption></figure>")

    section("Corpora", "Simulated training sets, one per recipe (Zarr stores under corpora/).", _corpus_rows(s),
            [c["figure"] for c in s.get("corpora", {}).values() if "figure" in c])
    section("Inverse networks", "Metrics on the held-out simulated test split; the mean predictor's MAE is the "
            "error of always answering the training mean.", _run_rows(s),
            [f for r in s.get("runs", {}).values() for f in r.get("figures", [])])
    acc = s.get("acceptance")
    if acc:
        intro = (f"Networks read real measured files; each value is compared with its literature reference. "
                 f"{acc['n_pass']} PASS, {acc['n_fail']} FAIL, {acc['n_unchecked']} not checked.")
        section("Validation on real measurements", intro, _acc_rows(acc), acc.get("figures", []))
        if acc.get("skipped"):
            md += [f"- skipped: {x}" for x in acc["skipped"]] + [""]
            parts.append("<ul>" + "".join(f"<li>skipped: {html.escape(x)}</li>" for x in acc["skipped"]) + "</ul>")
    bench = s.get("benchmark_real")
    if bench:
        section("Blind real-data benchmark", bench.get("intro", ""), (bench["head"], bench["rows"],
                bench.get("classes")), bench.get("figures", []))
    if s.get("studies"):
        md += ["## Studies", ""]
        parts.append("<h2>Studies</h2>")
        for k, st in s["studies"].items():
            verdict, reason = study_verdict(st)
            cls = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "skip")
            md += [f"### {k}: {verdict}", "", f"- verdict: **{verdict}**" + (f": {reason}" if reason else "")]
            parts.append(f'<h3>{html.escape(k)}: <span class="{cls}">{verdict}</span></h3>'
                         f"<p>{html.escape(reason)}</p>")
            if "argv" in st:
                cmd = f"simtrain {' '.join(map(str, st['argv']))}"
                md += [f"- `{cmd}`: exit {st.get('rc')}, {st.get('seconds', 0):.0f} s", ""]
                parts.append(f"<p><code>{html.escape(cmd)}</code>: exit {st.get('rc')}, "
                             f"{st.get('seconds', 0):.0f} s</p>")
            for name, res in (st.get("results") or {}).items():
                rows = _study_summary(res)
                if rows:
                    md += [f"Results in `{name}`:", ""] + markdown_table(["quantity", "value"], rows) + [""]
                    parts.append(f"<details><summary>{html.escape(name)}</summary>"
                                 + html_table(["quantity", "value"], rows) + "</details>")
            for f in st.get("figures", []):
                cap = caption_for(f)
                md += [f"![{Path(f).stem}]({f})", "", f"*{Path(f).name}*: {cap}", ""]
                parts.append(f'<figure><img src="{html.escape(f)}"><figcaption><b>{html.escape(Path(f).name)}'
                             f"</b>: {html.escape(cap)}</figcaption></figure>")
    (out / "report.md").write_text("\n".join(md) + "\n")
    style = ("body{font-family:sans-serif;max-width:1150px;margin:auto;padding:1em;color:#222}"
             "table{border-collapse:collapse;margin:0.5em 0 1em;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}"
             "th{background:#f0f0f0}tr.pass td,span.pass{background:#e3f6e3}tr.fail td,span.fail,.fail.box"
             "{background:#fbe3e3}tr.skip td,span.skip{background:#f6f6f6;color:#555}"
             "figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:13px;color:#444}"
             "code{background:#f4f4f4;padding:1px 4px}.box{padding:0.5em 1em;border-radius:4px}")
    (out / "index.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>simgen report</title>"
                                    f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n")


def load_summary(out: Path) -> dict:
    """The summary.json of a previous run in ``out`` (empty when none)."""
    p = Path(out) / "summary.json"
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
