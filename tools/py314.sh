#!/usr/bin/env bash
# Run the kata's suite on Debian's Python 3.14, inside a debootstrap tree of
# Debian testing, once per start method (fork, forkserver, spawn).
#
#   sudo tools/py314.sh [extra pytest args]
#
# Needs root, debootstrap (apt-get install debootstrap) and a Debian mirror;
# pip in the tree needs PyPI. Safe to run again: the tree and the venv are
# made once and reused; the mounts are undone on any exit (and the whole run
# lives in its own mount namespace where unshare(1) allows it, so nothing stays
# mounted even if the script is killed).
#
# The repository is bind-mounted read-only at /repo in the tree and run from
# there (PYTHONPATH=/repo, no install of the project itself), so the tests see
# the current files and the run writes nothing into the checkout: no
# __pycache__ (PYTHONDONTWRITEBYTECODE=1), no .egg-info, no .pytest_cache.
#
# Environment:
#   PY314_ROOT      the tree (default: <repo>/.py314; it holds a .gitignore of "*")
#   PY314_SUITE     Debian suite to bootstrap (default: testing)
#   PY314_MIRROR    Debian mirror (default: http://deb.debian.org/debian)
#   PY314_PACKAGES  packages to include (default: python3.14,python3.14-venv,ca-certificates)
#   PY314_METHODS   start methods to run (default: "fork forkserver spawn")
#   KATA_*          passed on to the tests
set -euo pipefail

self=$(realpath "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$self")/.." && pwd -P)
ROOT=$(realpath -m "${PY314_ROOT:-$REPO/.py314}")
SUITE=${PY314_SUITE:-testing}
MIRROR=${PY314_MIRROR:-http://deb.debian.org/debian}
PACKAGES=${PY314_PACKAGES:-python3.14,python3.14-venv,ca-certificates}
METHODS=${PY314_METHODS:-fork forkserver spawn}
PY=python3.14
VENV=/opt/py314-venv # inside the tree
LOGS=/var/log/py314  # inside the tree

say() { printf '[py314] %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 2
}

[[ $EUID -eq 0 ]] || die "run as root (debootstrap, mount and chroot need it)"
case $ROOT in / | "$REPO" | /usr* | /etc* | /proc* | /dev* | /sys*) die "refusing PY314_ROOT=$ROOT" ;; esac

# Private mount namespace: the mounts below vanish with the last process in it.
if [[ -z ${PY314_IN_NS:-} ]] && command -v unshare >/dev/null && unshare --mount true 2>/dev/null; then
    PY314_IN_NS=1 exec unshare --mount --propagation private "$BASH" "$self" "$@"
fi

# ----------------------------------------------------------------- the tree
t0=$SECONDS
if [[ -e $ROOT/.py314-bootstrapped && -x $ROOT/usr/bin/$PY ]]; then
    say "tree $ROOT exists; skipping debootstrap"
    boot_note="skipped (tree exists)"
else
    command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
    if [[ -e $ROOT ]]; then
        # Left over from an interrupted debootstrap; never remove through a mount.
        if findmnt -rn -o TARGET | awk -v r="$ROOT" '$0 == r || index($0, r "/") == 1' | grep -q .; then
            die "something is mounted under $ROOT; unmount it first"
        fi
        say "removing the incomplete tree $ROOT"
        rm -rf --one-file-system "$ROOT"
    fi
    mkdir -p "$ROOT"
    printf '*\n' >"$ROOT/.gitignore" # keep the tree out of git status, ruff, etc.
    say "debootstrap --variant=minbase --include=$PACKAGES $SUITE $ROOT $MIRROR"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR"
    [[ -x $ROOT/usr/bin/$PY ]] || die "debootstrap finished but $ROOT/usr/bin/$PY is missing"
    touch "$ROOT/.py314-bootstrapped"
    boot_note="$((SECONDS - t0)) s"
fi
[[ -e $ROOT/.gitignore ]] || printf '*\n' >"$ROOT/.gitignore"

# ------------------------------------------------------------------- mounts
mounted=()
kill_tree_processes() { # whatever still runs chrooted into the tree (started by this script)
    local proc
    for proc in /proc/[0-9]*; do
        [[ $(readlink "$proc/root" 2>/dev/null) == "$ROOT" ]] && kill -KILL "${proc#/proc/}" 2>/dev/null
    done
    return 0
}
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM HUP
    kill_tree_processes
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -R "${mounted[i]}" 2>/dev/null || umount -R -l "${mounted[i]}" ||
            say "could not unmount ${mounted[i]}"
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mnt() { # mnt TARGET MOUNT-ARGS...
    local target=$1
    shift
    mkdir -p "$target"
    mount "$@" "$target"
    mounted+=("$target")
}
mnt "$ROOT/proc" -t proc proc
mnt "$ROOT/dev" --rbind /dev
mount --make-rslave "$ROOT/dev"
# multiprocessing's semaphores live in /dev/shm: make sure there is a tmpfs there.
if ! mountpoint -q "$ROOT/dev/shm"; then
    mnt "$ROOT/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev shm
fi
mnt "$ROOT/repo" --bind "$REPO"
mount -o remount,bind,ro "$ROOT/repo"

# Name resolution and the host's CA bundle (pip reaches PyPI through them).
rm -f "$ROOT/etc/resolv.conf"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
[[ -s $ROOT/etc/hosts ]] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
cert=
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    mkdir -p "$ROOT/etc/ssl"
    cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/host-ca-certificates.crt"
    cert=/etc/ssl/host-ca-certificates.crt
fi

kata_env=()
while IFS= read -r -d '' kv; do
    [[ $kv == KATA_* ]] && kata_env+=("$kv")
done < <(env -0)
in_tree() { # in_tree [VAR=value...] COMMAND...: a clean environment, cwd /repo
    chroot "$ROOT" /usr/bin/env -i -C /repo \
        PATH=$VENV/bin:/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/repo \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-60}" \
        ${cert:+PIP_CERT=$cert} ${CI:+CI=$CI} "${kata_env[@]}" "$@"
}

# --------------------------------------------------------------------- venv
t1=$SECONDS
if [[ ! -e $ROOT$VENV/pyvenv.cfg ]]; then # (bin/python links to /usr/bin inside the tree)
    say "$PY -m venv $VENV"
    in_tree $PY -m venv "$VENV"
fi
# The project's runtime and test requirements, read from pyproject.toml; the
# project itself comes from /repo through PYTHONPATH.
mapfile -t reqs < <(in_tree python -c '
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p.get("optional-dependencies", {}).get("test", [])))')
say "pip install ${reqs[*]}"
in_tree python -m pip install -q "${reqs[@]}"
venv_note="$((SECONDS - t1)) s"

# -------------------------------------------------------------------- facts
version=$(in_tree $PY -c 'import sys; print(sys.version.split()[0])')
default=$(in_tree $PY -c 'import multiprocessing as m; print(m.get_start_method())')
say "$(in_tree $PY -VV)"
say "default start method: $default"
in_tree python -m pip list --format=freeze 2>/dev/null | grep -i -E '^(pytest|pytest-timeout|pytest-xdist|psutil|coverage)==' |
    tr '\n' ' ' | sed 's/^/[py314] /;s/ $/\n/' >&2

# -------------------------------------------------------------------- tests
mkdir -p "$ROOT$LOGS"
declare -A result secs
failed=0
for method in $METHODS; do
    say "pytest, KATA_START_METHOD=$method"
    t=$SECONDS
    # In the background with `wait`, so that a signal to this script is handled at once.
    in_tree KATA_START_METHOD="$method" python -m pytest -q -p no:cacheprovider -m "not hostile" "$@" 2>&1 |
        tee "$ROOT$LOGS/$method.log" &
    rc=0
    wait $! || rc=$? # pipefail: pytest's exit status
    secs[$method]=$((SECONDS - t))
    result[$method]=$({ grep -E '^=*.*([0-9]+ (passed|failed|errors?|skipped|xfailed|deselected)|no tests ran)' "$ROOT$LOGS/$method.log" || true; } | tail -1 | sed 's/^=* *//;s/ *=*$//')
    result[$method]="${result[$method]:-no summary} (exit $rc)"
    ((rc == 0)) || failed=1
done

echo
echo "== Python $version ($SUITE, $ROOT): default start method $default"
echo "debootstrap: $boot_note; venv + pip: $venv_note"
for method in $METHODS; do
    printf '%-10s %s, %s s  (log: %s)\n' "$method" "${result[$method]}" "${secs[$method]}" "$ROOT$LOGS/$method.log"
done
exit $failed
