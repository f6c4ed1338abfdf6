# Shared virtualenv set-up for scripts/test, scripts/demo and scripts/lock. Source it, do not run it:
#
#   source scripts/_bootstrap.sh            # from the repository root
#   camb_venv DIR AIRFLOW_VERSION
#
# camb_venv makes DIR a virtualenv (python3 -m venv; CAMB_PYTHON overrides python3) holding uv and
# exactly the packages of locks/airflow-AIRFLOW_VERSION.txt (Airflow, this project's dependencies and
# its "dev" dependency group, every version pinned), then this project, editable. It is idempotent
# and quick: DIR/.camb-bootstrap-stamp records a sha256 of pyproject.toml, the lock and the
# interpreter; when it matches and DIR/bin/python works, nothing is installed. Progress goes to
# stderr; a failing step prints its own output and camb_venv returns 1 (under `set -e` that ends the
# caller). Needs only python3 and the package registry. `bash scripts/lock` refreshes the locks.

#: The uv that installs and writes the locks: pinned, so a lock reads the same on every machine.
CAMB_UV_VERSION=0.13.9

camb_lock_file() {  # the lock of one Airflow version
    printf 'locks/airflow-%s.txt\n' "$1"
}

_camb_bootstrap_stamp() {  # the stamp a set-up from this lock should leave
    local python=$1 lock=$2
    {
        cat pyproject.toml "$lock"
        echo "uv $CAMB_UV_VERSION"
        "$python" -c 'import sys; print(sys.version)'
    } | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}

_camb_bootstrap_step() {  # run one set-up step; show its output only when it fails
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "Set-up step failed: $*" >&2
        return 1
    fi
}

camb_uv() {  # camb_uv DIR: DIR is a virtualenv holding the pinned uv (nothing else is installed)
    local dir=${1:?usage: camb_uv DIR}
    if [ ! -f pyproject.toml ]; then
        echo "camb_venv: run from the repository root (no pyproject.toml in $PWD)" >&2
        return 1
    fi
    if ! "$dir/bin/python" -c '' >/dev/null 2>&1; then
        echo "Creating $dir ..." >&2
        rm -rf "$dir"
        _camb_bootstrap_step "${CAMB_PYTHON:-python3}" -m venv "$dir" || return 1
    fi
    if [ "$("$dir/bin/uv" --version 2>/dev/null)" != "uv $CAMB_UV_VERSION" ]; then
        _camb_bootstrap_step "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
            "uv==$CAMB_UV_VERSION" || return 1
    fi
}

camb_venv() {
    local dir=${1:?usage: camb_venv DIR AIRFLOW_VERSION}
    local airflow_version=${2:?usage: camb_venv DIR AIRFLOW_VERSION}
    local lock stamp_file="$dir/.camb-bootstrap-stamp" stamp
    lock=$(camb_lock_file "$airflow_version")
    if [ ! -f "$lock" ]; then
        echo "camb_venv: no lock for Airflow $airflow_version ($lock); make one with: bash scripts/lock $airflow_version" >&2
        return 1
    fi
    camb_uv "$dir" || return 1
    stamp=$(_camb_bootstrap_stamp "$dir/bin/python" "$lock") || return 1
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
        echo "$dir is up to date (Airflow $airflow_version, $lock)." >&2
        return 0
    fi
    echo "Installing $lock and airflow-provider-camb into $dir ..." >&2
    rm -f "$stamp_file"
    # --no-deps: the lock holds every package, so nothing is resolved anew; --strict then checks
    # that the environment is whole (a package missing from the lock fails here, not in a test).
    _camb_bootstrap_step "$dir/bin/uv" pip install --quiet --python "$dir/bin/python" --no-deps --strict \
        -r "$lock" -e . || return 1
    _camb_bootstrap_step "$dir/bin/python" -c 'import airflow, airflow_provider_camb' || return 1
    printf '%s\n' "$stamp" >"$stamp_file"
}
