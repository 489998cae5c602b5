"""Writing result tables with their provenance: CSV (pandas), LaTeX (booktabs) and a JSON sidecar.

Every table in ``results/`` is written here, never by hand: ``NAME.csv``, ``NAME.tex`` and
``NAME.meta.json`` (command, scale, hardware, commit, wall time), and ``results/README.md`` is
regenerated from all sidecars. The ``.tex`` is made from the CSV as written (read back), by the
table's layout in :mod:`benchmarks._latex`, so ``python -m benchmarks.render`` re-makes the same
``.tex`` from a committed CSV and sidecar without re-running anything. No absolute path of this
machine is recorded: paths are written relative to the benchmark cache (``<cache>/...``), the
repository or the home directory (:func:`portable_path`, :func:`portable_meta`).
"""
from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from datagen import code_version


def checkout(package_dir=None) -> Path | None:
    """The source checkout the benchmarks package (``package_dir``, default this one) lives in:
    its parent folder when that holds ``pyproject.toml`` and ``.git``; None for an installed
    copy (site-packages), which has no ``results/`` and no commit of its own."""
    root = Path(package_dir or Path(__file__).parent).resolve().parent
    return root if (root / "pyproject.toml").is_file() and (root / ".git").exists() else None


#: the checkout (editable install, ``pytest benchmarks``, ``python -m benchmarks`` from it)
CHECKOUT = checkout()
#: where the default ``results/`` folder lives and paths are recorded relative to: the checkout,
#: else (a pip-installed package) the folder the command runs in, so ``python -m benchmarks run
#: table1 --scale small`` writes ``./results`` there
REPO = CHECKOUT if CHECKOUT is not None else Path.cwd()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> str:
    """One line describing the machine the numbers came from."""
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # torch missing or broken: CPU numbers stand on their own
        pass
    return f"{_cpu_model()}, {os.cpu_count()} cores{gpu}, {platform.system()} {platform.release()}"


def provenance(scale: str, started: float, **extra) -> dict:
    """The facts that make a table re-runnable: command, scale, hardware, commit, wall time."""
    return {
        "command": ("pytest " + shlex.join(sys.argv[1:]) if "pytest" in sys.argv[0]
                    else shlex.join(sys.argv)),
        "scale": scale,
        "hardware": hardware(),
        "python": platform.python_version(),
        "commit": code_version(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_time_s": round(time.perf_counter() - started, 1),
        **extra,
    }


def latex_comment(value) -> str:
    """A provenance value on one LaTeX comment line (ASCII, no line breaks)."""
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, str) else value
    return text.replace("\n", " ").encode("ascii", "backslashreplace").decode()


def portable_path(path, cache=None) -> str:
    """``path`` without this machine's directories: ``<cache>/...`` under the benchmark cache,
    relative to the repository inside it, ``~/...`` under the home directory, else its name."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        return p.as_posix()
    p = Path(os.path.abspath(p))
    for root, label in ((cache, "<cache>"), (REPO, None), (Path.home(), "~")):
        if root is None:
            continue
        root = Path(os.path.abspath(Path(root).expanduser()))
        try:
            rel = p.relative_to(root)
        except ValueError:
            continue
        if label is None:
            return rel.as_posix()
        return label if rel == Path(".") else f"{label}/{rel.as_posix()}"
    return p.name


def _portable_text(text: str, cache=None) -> str:
    """Absolute paths inside free text (a command line) made portable as in
    :func:`portable_path` (the repository as ``.``)."""
    for root, label in ((cache, "<cache>"), (REPO, "."), (Path.home(), "~")):
        if root is None:
            continue
        root = os.path.abspath(Path(root).expanduser())
        if root == os.sep:
            continue
        text = re.sub(re.escape(root) + r"(?=/|[\s'\"]|$)", lambda _m, s=label: s, text)
    return text


def _portable_command(command: str, cache=None) -> str:
    """A command line whose absolute path arguments (``--results /x/y``, ``--data=/x/d.h5``)
    are made portable by :func:`portable_path`."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: substitute the known roots only
        return _portable_text(command, cache)
    out = []
    for w in words:
        opt, eq, val = w.partition("=") if w.startswith("-") else ("", "", w)
        if os.path.isabs(val):
            w = opt + eq + portable_path(val, cache)
        out.append(w)
    if out == words:
        return _portable_text(command, cache)
    # quoted as the shell needs, except the <cache> placeholder (a reader's, not a shell's)
    return " ".join(w if re.fullmatch(r"[\w@%+=:,./<>~-]+", w) else shlex.quote(w) for w in out)


def portable_meta(meta: dict, cache=None, *, cache_layout: bool = False) -> dict:
    """``meta`` with every absolute path made portable: values of ``dataset`` and ``*_dir`` keys
    by :func:`portable_path`, paths inside other strings (the command) by their root. With
    ``cache_layout`` (sidecars of older versions, whose cache folder is unknown), a path that
    follows the cache layout, ``.../<scale>/data.h5`` or ``.../<scale>/runs``, becomes
    ``<cache>/<scale>/...``."""
    scale = str(meta.get("scale", ""))

    def fix(key, v):
        if isinstance(v, dict):
            return {k: fix(k, x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(key, x) for x in v]
        if not isinstance(v, str):
            return v
        if key == "command" or key.endswith("_command"):
            return _portable_command(v, cache)
        if (key == "dataset" or key.endswith("_dir")) and os.path.isabs(v):
            parts = Path(v).parts
            if cache_layout and scale and scale in parts[:-1]:
                i = len(parts) - 1 - parts[::-1].index(scale)
                return "<cache>/" + "/".join(parts[i:])
            return portable_path(v, cache)
        return _portable_text(v, cache)

    return {k: fix(k, v) for k, v in meta.items()}


def collect_rows(write):
    """The body of a module fixture that gathers rows from its tests, then writes them:
    ``yield from collect_rows(lambda df, started: ...)``; ``write`` gets the rows as a DataFrame
    and the start time, and is not called when no test added a row (e.g. all deselected)."""
    started = time.perf_counter()
    rows: list = []
    yield rows
    if rows:
        write(pd.DataFrame(rows), started)


#: the benchmark scales from the cheapest up (``--scale``)
SCALES = ("smoke", "small", "medium", "paper")

#: the help of the ``--models`` option of ``python -m benchmarks run``, ``benchmarks.prepare``
#: and ``pytest benchmarks``
MODELS_HELP = ("exported models to load instead of training them (per run RUN.json and "
               "RUN.safetensors, from python -m model zoo export --out DIR RUN=RUN); none: "
               "train every model in the cache (default: those beside the scale's committed "
               "tables, results/medium/models at the medium scale, results/models at the "
               "small and paper scales, where they exist)")


def default_cache() -> Path:
    """``$DECOUPLE_CACHE``, else ``~/.cache/decouple``: where the benchmarks keep datasets and
    trained models (outside git)."""
    return Path(os.environ.get("DECOUPLE_CACHE", str(Path.home() / ".cache" / "decouple")))


def results_folder(scale: str, cache, results=None) -> Path:
    """Where a ``scale`` run writes its tables: ``results`` when given; else ``results/`` at the
    small and paper scales, ``results/medium`` at the medium scale (one scale a folder), and
    ``<cache>/smoke/results`` at the smoke scale, so that a smoke run never touches the
    committed tables. ``results/`` is the checkout's, or ``./results`` where benchmarks is
    installed rather than run from a checkout (:data:`REPO`)."""
    if results:
        return Path(results)
    if scale == "smoke":
        return Path(cache) / "smoke" / "results"
    if scale == "medium":
        return REPO / "results" / "medium"
    return REPO / "results"


class ResultsScaleError(ValueError):
    """A run would replace tables made at a larger scale with its own (smaller) ones."""


def results_scale(results_dir: Path) -> str | None:
    """The largest scale any table in ``results_dir`` was made at (its sidecars), or None."""
    found = []
    for p in Path(results_dir).glob("*.meta.json"):
        try:
            found.append(SCALES.index(json.loads(p.read_text()).get("scale")))
        except (OSError, ValueError, AttributeError):  # unreadable, not JSON, unknown scale
            continue
    return SCALES[max(found)] if found else None


def check_results_scale(results_dir: Path, scale: str) -> None:
    """Refuse a ``scale`` run whose tables and figures would overwrite ones made at a larger
    scale in ``results_dir`` (a smoke run over the committed small-scale ``results/``): the
    folder would then mix scales and lose re-run hours of training. Raises
    :class:`ResultsScaleError` saying how to go on."""
    held = results_scale(results_dir)
    if held is not None and SCALES.index(held) > SCALES.index(scale):
        raise ResultsScaleError(
            f"{results_dir} holds tables made at the {held} scale; a {scale} run would replace "
            f"some of them and leave a folder of mixed scales. Write elsewhere (--results DIR) "
            f"or run at --scale {held}.")


class ForeignFileError(ValueError):
    """A file in the results folder that the writer would replace but did not write itself."""


#: how the results index (``README.md``) that :func:`update_index` writes begins; a README.md
#: that begins otherwise is someone else's and is never replaced
INDEX_HEADER = "# Results\n\nGenerated from the tables' sidecars by "


def _why_not_an_index(path: Path) -> str | None:
    """None when ``path`` is a regular file (not a link) that begins as a results index
    (:data:`INDEX_HEADER`); else why it is not."""
    if path.is_symlink():
        return "a symbolic link"
    if not path.is_file():
        return "not a regular file"
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(INDEX_HEADER.encode()))
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None if head == INDEX_HEADER.encode() else "not a results index"


def check_results_folder(results_dir: Path) -> None:
    """Raise :class:`ForeignFileError` when writing tables into ``results_dir`` would replace a
    file the tool did not write: a ``README.md`` that is not a results index (it does not begin
    with :data:`INDEX_HEADER`), or one that is a symbolic link or not a regular file (never
    followed). Called before a run computes anything and before every write of the index."""
    path = Path(results_dir) / "README.md"
    if not os.path.lexists(path):
        return
    how = _why_not_an_index(path)
    if how is not None:
        raise ForeignFileError(
            f"{path} was not written by this tool ({how}; the index it writes begins with "
            f"'# Results' and 'Generated from the tables' sidecars'): writing tables into "
            f"{results_dir} would replace it; move it away or choose another --results DIR")


#: what the results index reads from every table's sidecar
SIDECAR_KEYS = ("caption", "command", "scale", "hardware", "commit", "created", "wall_time_s")


def read_sidecars(results_dir: Path, warn: bool = True) -> dict[str, dict]:
    """Name -> sidecar of every table in ``results_dir`` (``NAME.meta.json``), by name. A
    ``*.meta.json`` that is not a regular file, cannot be read, is not JSON or is not a table's
    sidecar (another tool's file: no :data:`SIDECAR_KEYS`) is skipped, with one warning line on
    stderr when ``warn``: it is not ours to judge, and a run must not fail on it after its
    tables were computed."""
    out = {}
    for p in sorted(Path(results_dir).glob("*.meta.json")):
        reason, meta = None, None
        if not p.is_file():
            reason = "not a regular file"
        else:
            try:
                meta = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # UnicodeDecodeError, JSONDecodeError
                reason = f"unreadable: {exc}"
        if reason is None and not isinstance(meta, dict):
            reason = "not a JSON object"
        if reason is None and [k for k in SIDECAR_KEYS if k not in meta]:
            reason = "no " + ", ".join(k for k in SIDECAR_KEYS if k not in meta)
        if reason is not None:
            if warn:
                print(f"warning: skipping {p}: not a table's sidecar ({reason})",
                      file=sys.stderr)
            continue
        out[p.name.removesuffix(".meta.json")] = meta
    return out


def write_table(df: pd.DataFrame, name: str, results_dir: Path, meta: dict, *,
                caption: str, crops: pd.DataFrame | None = None) -> None:
    """Write ``name``.csv/.tex/.meta.json into ``results_dir`` and refresh its README.

    ``caption`` describes the CSV (it goes into the sidecar and the README); the LaTeX layout and
    its caption come from :mod:`benchmarks._latex` and depend on the CSV rows only. ``crops``
    (one row per model, operator, γ and test crop: the scores the table's means are made of)
    goes into ``name``.crops.csv beside it, so that any comparison can be redone, with its
    interval (:mod:`benchmarks._stats`), without re-evaluating.
    """
    results_dir = Path(results_dir)
    check_results_folder(results_dir)  # before anything is written
    results_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(results_dir / f"{name}.csv", index=False)
    if crops is not None:
        crops.to_csv(results_dir / f"{name}.crops.csv", index=False)
    meta = portable_meta({"caption": caption, **{k: v for k, v in meta.items()
                                                 if k != "caption"}})
    (results_dir / f"{name}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    write_tex(results_dir, name)
    update_index(results_dir)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` (UTF-8) to ``path`` unless the file holds exactly those bytes already;
    returns whether it wrote. An unchanged file keeps its bytes and its modification time, so
    a re-render that changes nothing touches nothing (git and make see no change)."""
    data, path = text.encode("utf-8"), Path(path)
    try:
        if path.is_file() and path.read_bytes() == data:
            return False
    except OSError:  # unreadable: written as before
        pass
    path.write_bytes(data)
    return True


def tex_text(name: str, df: pd.DataFrame, meta: dict) -> str:
    """The ``.tex`` of table ``name`` from its rows and sidecar (provenance as ``%`` comments);
    a table that prints the paper's figures beside ours states in its caption the scale ours
    were made at (:func:`benchmarks._latex.scale_sentence`, from the sidecar)."""
    from ._latex import PACKAGES, add_to_caption, render, scale_sentence

    header = [f"% {name}: generated from {name}.csv, do not edit (provenance: {name}.meta.json)",
              f"% needs \\usepackage{{{','.join(PACKAGES)}}}"]
    header += [f"% {k}: {latex_comment(v)}" for k, v in meta.items() if k != "caption"]
    body = add_to_caption(render(name, df, meta["caption"]), scale_sentence(meta, df))
    return "\n".join(header) + "\n" + body


def write_tex(results_dir: Path, name: str) -> Path:
    """``name``.tex from ``name``.csv and ``name``.meta.json (:func:`tex_text`); a ``.tex``
    that already holds it is left untouched."""
    results_dir = Path(results_dir)
    meta = json.loads((results_dir / f"{name}.meta.json").read_text())
    df = pd.read_csv(results_dir / f"{name}.csv")
    path = results_dir / f"{name}.tex"
    write_if_changed(path, tex_text(name, df, meta))
    return path


#: tables longer than this are summarised in the README (the CSV has every row)
README_MAX_ROWS = 40
#: a table with a short form (:func:`_readme_summary`) shows it from this many rows on
README_SUMMARY_ROWS = 12


def update_index(results_dir: Path) -> bool:
    """Regenerate ``results_dir/README.md`` from the tables' sidecars: per table its caption,
    files, how it was made, its summary, and the table itself when short (else a summary).
    A README.md there that the tool did not write is refused (:func:`check_results_folder`);
    unreadable sidecars are skipped with a warning (:func:`read_sidecars`). Returns whether the
    file was written (not when it holds the same text already: :func:`write_if_changed`)."""
    results_dir = Path(results_dir)
    check_results_folder(results_dir)
    lines = ["# Results", "",
             "Generated from the tables' sidecars by `pytest benchmarks` (see the repository "
             "README) and by `python -m benchmarks.render results/`; do not edit by hand. Each "
             "table has a CSV (every number, for pandas), a LaTeX file to `\\input` (booktabs, "
             "`array`) and a `.meta.json` with how it was made (command, scale, hardware, "
             "commit, dataset, models).", ""]
    metas = read_sidecars(results_dir)
    if metas:
        lines += ["| table | what | rows |", "| --- | --- | --- |"]
        for name, meta in metas.items():
            csv = results_dir / f"{name}.csv"
            n = len(pd.read_csv(csv)) if csv.is_file() else 0
            what = meta["caption"].split(":")[0].split(";")[0]
            lines.append(f"| [{name}](#{name}) | {what} | {n} |")
        lines.append("")
    for name, meta in metas.items():
        csv = results_dir / f"{name}.csv"
        files = [f"[`{name}.csv`]({name}.csv)", f"[`{name}.tex`]({name}.tex)",
                 f"[`{name}.meta.json`]({name}.meta.json)"]
        if (results_dir / f"{name}.crops.csv").is_file():  # the per-crop scores, if kept
            files.append(f"[`{name}.crops.csv`]({name}.crops.csv)")
        for key in ("figure",):
            if meta.get(key):
                files.append(f"[`{meta[key]}`]({meta[key]})")
        lines += [f"## {name}", "", meta["caption"], "", "- files: " + ", ".join(files),
                  f"- made by `{meta['command']}` ({meta['scale']} scale) on {meta['hardware']}, "
                  f"commit {meta['commit']}, {meta['created']}, {meta['wall_time_s']} s"]
        if meta.get("rendered"):
            r = meta["rendered"]
            lines.append(f"- LaTeX re-rendered by `{r['command']}` at commit {r['commit']}")
        if meta.get("dataset"):
            lines.append(f"- dataset: `{meta['dataset']}` (digest "
                         f"`{str(meta.get('dataset_digest', ''))[:12]}`)")
        for key, what in (("exported_models", "the exported models"),
                          ("zoo_models", "the model zoo")):
            exported = meta.get(key)  # Experiment.training_facts
            if not (isinstance(exported, dict) and exported.get("runs")):
                continue
            lines.append(f"- models: {len(exported['runs'])} of {meta.get('models', '?')} "
                         f"loaded from {what} in `{exported.get('folder')}` "
                         "(committed; not retrained)")
            same = exported.get("trained_on_same_plan")
            if isinstance(same, dict) and same:  # datagen.plan.SAME_PLAN_DIGESTS
                digests = sorted({str(d)[:12] for d in same.values()})
                lines.append(f"  - {len(same)} of them trained on dataset "
                             f"{', '.join(digests)}: the same plan as this one's (γ one ulp "
                             "apart; `datagen.plan.SAME_PLAN_DIGESTS`)")
        if meta.get("summary"):
            lines += ["", meta["summary"]]
        if csv.is_file():
            df = pd.read_csv(csv)
            summary = _readme_summary(name, df) if len(df) > README_SUMMARY_ROWS else None
            if len(df) <= README_MAX_ROWS and summary is None:
                lines += ["", markdown(df)]
            else:
                lines += ["", f"{len(df)} rows: see the CSV."
                          + (" Summary (as in the LaTeX table):" if summary is not None else "")]
                if summary is not None:
                    lines += ["", markdown(summary)]
        if meta.get("figure"):
            lines += ["", f"![{name}]({meta['figure']})"]
        lines.append("")
    scales = [p.parent.name for p in sorted(results_dir.glob("*/README.md")) if _why_not_an_index(p) is None]
    if scales:  # tables of another scale, one folder each (results/medium)
        lines += ["## Other scales", ""] + [f"- [`{n}/`]({n}/README.md)" for n in scales] + [""]
    others = sorted(p.name for p in results_dir.glob("*.md") if p.name != "README.md")
    if others:  # reports written by other tools (e.g. mutation testing)
        lines += ["## Other reports", ""] + [f"- [`{n}`]({n})" for n in others] + [""]
    return write_if_changed(results_dir / "README.md", "\n".join(lines))


def _readme_summary(name: str, df: pd.DataFrame) -> pd.DataFrame | None:
    """The short form of a long table, if its entry in the registry gives one (``summary`` of
    :class:`benchmarks.tables.Table`: the γ sweep, one row per operator; the joint sweep, one
    per model; Tables 1, 3 and 12, their average rows)."""
    from .tables import registry

    table = registry().get(name)
    return table.summary(df) if table is not None and table.summary is not None else None


def markdown(df: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def cell(v):
        if isinstance(v, float):
            return "" if v != v else float_format.format(v)
        return str(v)

    rows = [list(map(str, df.columns)), ["---"] * len(df.columns)]
    rows += [[cell(v) for v in r] for r in df.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)
