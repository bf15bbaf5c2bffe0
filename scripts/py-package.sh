#!/usr/bin/env bash
# Ferry for Python, end to end: builds the `ferry` wheel from crates/ferry-py with maturin (from
# PyPI), installs it into a fresh venv, and runs the package's pytest suite against the
# installed wheel (not the source tree).
#
#   scripts/py-package.sh            # release wheel (what you would ship)
#   scripts/py-package.sh --dev      # debug wheel: reuses `cargo test --workspace`'s build (CI)
#   scripts/py-package.sh --dev -- -k batch    # arguments after `--` go to pytest
#
# The venv and the wheel are in target/py-package (or $FERRY_PY_PACKAGE_DIR); $PYTHON picks
# the interpreter (default python3; any CPython >= 3.9: the wheel is abi3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${FERRY_PY_PACKAGE_DIR:-$root/target/py-package}"
python="${PYTHON:-python3}"
profile=(--release)
pytest_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dev) profile=(--profile dev); shift ;;
        --release) profile=(--release); shift ;;
        --) shift; pytest_args=("$@"); break ;;
        *) echo "py-package: unknown argument $1 (expected --dev, --release, -- PYTEST_ARGS)" >&2; exit 2 ;;
    esac
done

rm -rf "$out/venv" "$out/wheels"
mkdir -p "$out"
echo "== py-package: fresh venv $out/venv ($("$python" --version 2>&1))"
"$python" -m venv "$out/venv"
py="$out/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check "maturin>=1.5,<2"

echo "== py-package: maturin build ${profile[*]}"
"$out/venv/bin/maturin" build "${profile[@]}" --quiet \
    --manifest-path "$root/crates/ferry-py/Cargo.toml" --interpreter "$py" --out "$out/wheels"
wheel="$(ls "$out"/wheels/ferry-*.whl)"
"$py" -m pip install --quiet --disable-pip-version-check "$wheel" "pytest>=7" "hypothesis>=6"

# Run from outside the source tree so `import ferry` can only find the installed wheel.
cd "$out"
"$py" -c 'import ferry, sys; assert "site-packages" in ferry.__file__, ferry.__file__; print("== py-package: testing", ferry.__file__)'
set +e
"$py" -m pytest "$root/crates/ferry-py/tests" -q -p no:cacheprovider "${pytest_args[@]}"
rc=$?
set -e
# pytest: 0 all passed, 1 some failed, 2 interrupted, 3 internal error, 4 usage error,
# 5 no tests collected (a broken suite, not a success).
case "$rc" in
    0) ;;
    5) echo "py-package: pytest collected no tests" >&2; exit 1 ;;
    *) echo "py-package: pytest failed (exit $rc)" >&2; exit "$rc" ;;
esac
