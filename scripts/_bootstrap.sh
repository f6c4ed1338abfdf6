# Shared virtualenv set-up for scripts/test and scripts/demo. Source it, do not run it:
#
#   source scripts/_bootstrap.sh            # from the repository root
#   camb_venv DIR AIRFLOW_VERSION [REQUIREMENT...]
#
# camb_venv makes DIR a virtualenv (python3 -m venv; CAMB_PYTHON overrides python3) holding uv,
# apache-airflow==AIRFLOW_VERSION, this project editable with its [dev] extra, and each extra
# REQUIREMENT. It is idempotent and quick: DIR/.camb-bootstrap-stamp records a sha256 of
# pyproject.toml, the arguments and the interpreter; when it matches and DIR/bin/python works,
# nothing is installed. Progress goes to stderr; a failing step prints its own output and
# camb_venv returns 1 (under `set -e` that ends the caller). Needs only python3 and the
# package registry.

_camb_bootstrap_stamp() {  # the stamp a set-up with these arguments should leave
    local python=$1
    shift
    {
        cat pyproject.toml
        printf '%s\n' "$@"
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

camb_venv() {
    local dir=${1:?usage: camb_venv DIR AIRFLOW_VERSION [REQUIREMENT...]}
    local airflow_version=${2:?usage: camb_venv DIR AIRFLOW_VERSION [REQUIREMENT...]}
    shift 2
    local base_python=${CAMB_PYTHON:-python3}
    local stamp_file="$dir/.camb-bootstrap-stamp"
    local stamp

    if [ ! -f pyproject.toml ]; then
        echo "camb_venv: run from the repository root (no pyproject.toml in $PWD)" >&2
        return 1
    fi
    if ! "$dir/bin/python" -c '' >/dev/null 2>&1; then
        echo "Creating $dir ..." >&2
        rm -rf "$dir"
        _camb_bootstrap_step "$base_python" -m venv "$dir" || return 1
    fi
    stamp=$(_camb_bootstrap_stamp "$dir/bin/python" "$airflow_version" "$@") || return 1
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
        echo "$dir is up to date (Airflow $airflow_version)." >&2
        return 0
    fi
    echo "Installing Airflow $airflow_version and airflow-provider-camb[dev] into $dir ..." >&2
    rm -f "$stamp_file"
    if [ ! -x "$dir/bin/uv" ]; then
        _camb_bootstrap_step "$dir/bin/python" -m pip install --quiet --disable-pip-version-check uv || return 1
    fi
    _camb_bootstrap_step "$dir/bin/uv" pip install --quiet --python "$dir/bin/python" \
        -e '.[dev]' "apache-airflow==$airflow_version" "$@" || return 1
    _camb_bootstrap_step "$dir/bin/python" -c 'import airflow, airflow_provider_camb' || return 1
    printf '%s\n' "$stamp" >"$stamp_file"
}
