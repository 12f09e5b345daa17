#!/usr/bin/env bash
# Build the offline install bundle of the edge agent, for line PCs with no internet.
#
#   packaging/offline-bundle.sh [--python PY] [--out DIR] [--cache DIR] [--refresh]
#
# Writes DIR/millstream-agent-<version>-py<X.Y>-<platform>.tar.gz (DIR defaults to dist/) holding
# every wheel `millstream[agent]` needs — and nothing of the hub's (no FastAPI, asyncpg, Kafka) —
# plus install.sh, which makes a virtualenv and installs from those wheels with `pip --no-index`.
# Wheels are specific to a Python version and platform: build with the same Python minor version
# and CPU architecture as the line PC (--python python3.11; an arm64 PC needs an arm64 build).
#
# The versions are the locked ones (requirements/agent.txt, requirements/build.txt), each wheel
# checked against the lock's sha256 — the bundle ships what CI tested. Downloads go through pip's
# ordinary index settings (pip.conf, PIP_INDEX_URL) into a wheel cache (--cache, default
# ~/.cache/millstream/wheels); once the cache holds everything, building needs no network at all.
# --refresh asks the index again even when the cache has them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=python3
out="$root/dist"
cache="${MILLSTREAM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/millstream/wheels}"
refresh=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --refresh) refresh=1; shift ;;
    -h | --help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "offline-bundle: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "offline-bundle: $*"; }

pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
platform=$("$python" -c 'import sysconfig; print(sysconfig.get_platform().replace("-", "_").replace(".", "_"))')
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml")
name="millstream-agent-$version-py$pyver-$platform"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
bundle="$stage/$name"
wheels="$bundle/wheels"
log="$stage/pip.log"
mkdir -p "$wheels" "$cache" "$out"

pip_wheel() {
  "$python" -m pip wheel --disable-pip-version-check --quiet "$@" >>"$log" 2>&1
}

# Into DIR, the wheels of REQUIREMENT and all it needs: from the cache alone when it has them all,
# otherwise from the index, through the cache.
fetch() {
  local dir=$1
  shift
  if [ "$refresh" -eq 0 ] && pip_wheel --no-index --find-links "$cache" --wheel-dir "$dir" "$@"; then
    return 0
  fi
  say "  not all in the cache; fetching from the package index into $cache"
  if ! pip_wheel --find-links "$cache" --wheel-dir "$cache" "$@" \
    || ! pip_wheel --no-index --find-links "$cache" --wheel-dir "$dir" "$@"; then
    tail -n 30 "$log" >&2
    say "failed: pip could not get $* (log above)" >&2
    exit 1
  fi
}

say "bundle $name (Python $pyver, $platform), wheel cache $cache"

say "[1/5] the build backend, locked, for building the project wheel here"
fetch "$cache" --require-hashes --no-deps -r "$root/requirements/build.txt"

say "[2/5] the millstream wheel"
# The build backend comes from the cache, so a warm cache builds with no network.
fetch "$stage/project" --no-deps "$root"
project=$(ls "$stage"/project/millstream-"$version"-*.whl)
cp "$project" "$wheels/"

say "[3/5] every wheel millstream[agent] needs, and pip to install them: the locked versions"
fetch "$wheels" --require-hashes --no-deps -r "$root/requirements/agent.txt"
rm -f "$cache"/millstream-*.whl  # the project itself is rebuilt every time, never cached
count=$(ls "$wheels" | wc -l)
for hub_only in fastapi asyncpg confluent_kafka uvicorn redis; do
  if ls "$wheels" | grep -qi "^${hub_only}-"; then
    say "failed: $hub_only is in the bundle; millstream[agent] must not need it" >&2
    exit 1
  fi
done

say "[4/5] install.sh, the service unit, an example config, checksums"
sed -e "s/@PYVER@/$pyver/g" -e "s/@VERSION@/$version/g" >"$bundle/install.sh" <<'INSTALL'
#!/bin/sh
# Install the Millstream edge agent @VERSION@ from this bundle, with no network.
#
#   sudo ./install.sh [PREFIX]        PREFIX defaults to /opt/millstream
#
# Makes a virtualenv at PREFIX and installs millstream[agent] from ./wheels with pip --no-index.
# Needs Python @PYVER@ (PYTHON=/path/to/python3.@... to pick one). Running it again upgrades in place.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/opt/millstream}
python=${PYTHON:-python3}
want=@PYVER@

say() { echo "install: $*"; }

if ! have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); then
  say "no Python at '$python'; install Python $want or set PYTHON=/path/to/python$want" >&2
  exit 1
fi
if [ "$have" != "$want" ]; then
  say "this bundle holds wheels for Python $want, but $python is $have." >&2
  say "set PYTHON=/path/to/python$want, or build a bundle with that Python:" >&2
  say "  packaging/offline-bundle.sh --python python$have" >&2
  exit 1
fi

say "[1/4] checking the bundle's checksums"
(cd "$here" && sha256sum -c --quiet SHA256SUMS) || {
  say "the bundle is damaged (checksum mismatch above); copy it again" >&2
  exit 1
}

say "[2/4] virtualenv $prefix (Python $have)"
# --without-pip: Debian's python3 without the python3-venv package has no ensurepip; pip comes
# from the bundle instead.
"$python" -m venv --without-pip "$prefix"

say "[3/4] installing millstream[agent] from $here/wheels (no network)"
pip_wheel=$(ls "$here"/wheels/pip-*.whl | head -n 1)
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$prefix/bin/python" "$pip_wheel/pip" install --no-index --find-links "$here/wheels" \
  --quiet --upgrade pip "millstream[agent]==@VERSION@"

say "[4/4] checking"
"$prefix/bin/edge-agent" --version

cat <<NEXT

Installed. Next steps (docs/deploy.md, "Line PC"):
  ln -sf $prefix/bin/edge-agent /usr/local/bin/edge-agent
  edge-agent init /etc/millstream/agent.yaml      # or start from $here/agent.example.yaml
  edge-agent validate /etc/millstream/agent.yaml
  edge-agent probe /etc/millstream/agent.yaml --device <machine>
  install -m 0644 $here/millstream-agent.service /etc/systemd/system/
  systemctl daemon-reload && systemctl enable --now millstream-agent
  edge-agent status /etc/millstream/agent.yaml
NEXT
INSTALL
chmod 0755 "$bundle/install.sh"
cp "$root/packaging/systemd/millstream-agent.service" "$bundle/"
cp "$root/examples/agent.yaml" "$bundle/agent.example.yaml"
(cd "$bundle" && ls wheels | sed 's/^/wheels\//' >MANIFEST \
  && sha256sum install.sh millstream-agent.service agent.example.yaml MANIFEST wheels/* >SHA256SUMS)

say "[5/5] packing"
tarball="$out/$name.tar.gz"
tar -czf "$tarball.partial" -C "$stage" "$name"
mv "$tarball.partial" "$tarball"
say "wrote $tarball ($count wheels, $(du -h "$tarball" | cut -f1))"
say "on the line PC: tar -xzf $name.tar.gz && sudo $name/install.sh"
