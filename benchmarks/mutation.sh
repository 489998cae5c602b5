#!/usr/bin/env bash
# Mutation testing of the modules that turn numbers into claims (issue 16); run by hand, not in tox.
#
#   .tox/py311/bin/python -m pip install "mutmut==2.5.1"    # once (not a project dependency)
#   benchmarks/mutation.sh [WORKDIR] [MODULE...]
#
# MODULE: metrics evaluate predict dataset gamma (default: all). The working tree (tracked and
# untracked, not ignored files) is copied to WORKDIR (default /tmp/decouple-mutation) and mutated
# there, never in place. Each module is run against the fast tests that cover it (RUNNERS below);
# the per-module results are left in WORKDIR/<module>.txt (`mutmut results`) and
# WORKDIR/<module>.diffs (every surviving mutant's diff). The summary is results/mutation_testing.md.
# mutmut's "suspicious" = killed, but slowly; "timeout" = the tests ran 10x the baseline (killed).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$REPO/.tox/py311/bin/python}
MUTMUT=${MUTMUT:-$(dirname "$PY")/mutmut}
WORK=${1:-/tmp/decouple-mutation}
shift || true
MODULES=("$@")
[ ${#MODULES[@]} -eq 0 ] && MODULES=(metrics evaluate predict dataset gamma)
"$MUTMUT" version >/dev/null || { echo "mutmut not found ($MUTMUT); pip install mutmut==2.5.1"; exit 1; }

declare -A PATHS=(
  [metrics]=model/metrics.py [evaluate]=model/evaluate.py [predict]=model/predict.py
  [dataset]=datagen/dataset.py [gamma]=operators/__init__.py)
T=tests
# node ids, never -k: a -k filter applies to every file given and would deselect the others
declare -A RUNNERS=(
  [metrics]="$T/test_values_evaluate.py::test_metrics_equal_their_definitions $T/test_model.py::test_metrics_follow_the_protocol $T/test_joint.py::test_single_channel_tasks_are_scored_on_one_channel"
  [evaluate]="$T/test_values_evaluate.py::test_evaluate_equals_figures_computed_independently $T/test_values_evaluate.py::test_evaluate_options $T/test_values_evaluate.py::test_evaluate_single_gamma_model_only_at_its_gamma $T/test_values_evaluate.py::test_cli_eval_writes_the_evaluate_table $T/test_joint.py::test_joint_model_trains_saves_loads_and_evaluates $T/test_joint.py::test_single_channel_tasks_are_scored_on_one_channel"
  [predict]="$T/test_values_model.py --deselect $T/test_values_model.py::test_cli_apply_bgu_writes_what_the_python_call_returns $T/test_model.py::test_single_gamma_baseline_and_strict $T/test_model.py::test_bad_inputs_are_clear_errors"
  [dataset]="$T/test_values_dataset.py"
  [gamma]="$T/test_values_gamma.py $T/test_model.py::test_gamma_coder")

rm -rf "$WORK"
mkdir -p "$WORK"
(cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - --ignore-failed-read -cf -) \
  | tar -xf - -C "$WORK"
cd "$WORK"

# Only some functions of a module are under test (ONLY below); every other line of it gets
# mutmut's "# pragma: no mutate". operators/__init__.py: the γ laws' normalize/denormalize/sample;
# model/predict.py: what turns an image and a γ into output pixels (not the checkpoint plumbing,
# the re-tuning cache or the error messages, which other tests cover).
declare -A ONLY=(
  [gamma]="normalize denormalize sample"
  [predict]="to_uint8 check weights run apply _as_uint8_or_float _tensor _output")
for m in "${MODULES[@]}"; do
  [ -n "${ONLY[$m]:-}" ] || continue
  "$PY" - "${PATHS[$m]}" ${ONLY[$m]} <<'PYEOF'
import ast, pathlib, sys
p, names = pathlib.Path(sys.argv[1]), set(sys.argv[2:])
src = p.read_text().splitlines()
keep = set()
for node in ast.walk(ast.parse("\n".join(src))):
    if isinstance(node, ast.FunctionDef) and node.name in names:
        keep.update(range(node.lineno, node.end_lineno + 1))
assert keep, f"none of {sorted(names)} in {p}"
out = [l if (i + 1 in keep or not l.strip() or l.rstrip().endswith("\\")) else l + "  # pragma: no mutate"
       for i, l in enumerate(src)]
p.write_text("\n".join(out) + "\n")
PYEOF
done

# The tests' tiny dataset (tests/conftest.py, fixture `data`) is built once and reused by every
# mutant run: datagen/build.py is not mutated here, so the file is the same every time.
"$PY" - <<'EOF'
import pathlib, re
p = pathlib.Path("tests/conftest.py")
s = p.read_text()
old = '    return tiny_build(tmp_path_factory.mktemp("imgs"), "tiny.h5"'
assert s.count(old) == 1 and "def data(tmp_path_factory)" in s, "conftest's data fixture changed"
new = ('    cached = os.environ.get("MUTATION_DATA")\n'
       '    if cached and (Path(cached) / "tiny.h5").is_file():\n'
       '        return Path(cached) / "tiny.h5"\n'
       '    if cached:\n'
       '        Path(cached).mkdir(parents=True, exist_ok=True)\n'
       '    return tiny_build(Path(cached) if cached else tmp_path_factory.mktemp("imgs"), "tiny.h5"')
p.write_text(s.replace(old, new))
EOF
export MUTATION_DATA="$WORK/.mutation_data" NUMBA_CACHE_DIR="$WORK/.numba_cache" PYTHONPATH="$WORK"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

for m in "${MODULES[@]}"; do
  runner="$PY -m pytest -x -q -p no:cacheprovider ${RUNNERS[$m]}"
  echo "== $m: ${PATHS[$m]}  <-  ${RUNNERS[$m]}"
  $runner >/dev/null || { echo "the tests fail without mutation: $runner"; exit 1; }
  rm -f .mutmut-cache
  start=$(date +%s)
  "$MUTMUT" run --paths-to-mutate "${PATHS[$m]}" --runner "$runner" --tests-dir tests \
    --test-time-multiplier 3 --test-time-base 30 --no-progress --simple-output --CI || true
  echo "   $(( $(date +%s) - start )) s"
  "$MUTMUT" results > "$m.txt" || true
  : > "$m.diffs"
  for id in $("$MUTMUT" result-ids survived) $("$MUTMUT" result-ids timeout) $("$MUTMUT" result-ids suspicious); do
    { echo "--- mutant $id"; "$MUTMUT" show "$id"; } >> "$m.diffs"
  done
  cp .mutmut-cache "$m.mutmut-cache"
  grep -E "^(Survived|Timed out|Suspicious|Killed)" "$m.txt" || true
  for s in killed survived timeout suspicious; do
    printf '   %-10s %s\n' "$s" "$("$MUTMUT" result-ids "$s" 2>/dev/null | wc -w)"
  done
done
