#!/usr/bin/env bash
# One-step, idempotent setup: Python virtualenv + pinned deps, JVM jars from Maven Central into
# var/jars/, and the tools virtualenv. Quick when nothing changed (each step keeps a stamp with the
# hash of its inputs). Nothing is downloaded later while jobs or tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p var/log

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
JARS=var/jars
MVN_OPTS=(-q -B -Dstyle.color=never -s scripts/jvm/settings.xml)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# --- prerequisites -------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (need Python >= 3.11)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python >= 3.11 required, found $("$PYTHON" --version 2>&1)"
command -v java >/dev/null || die "java not found (need Java 17)"
command -v mvn >/dev/null || die "mvn not found (Maven fetches the JVM artifacts)"

# --- Python virtualenv ---------------------------------------------------------------------
# every requirements file except the tools venv (dev.txt includes the others with -r), and the lock
# of the whole environment (requirements/lock/app.txt: every transitive package pinned). uv installs
# with the lock as constraints: the same packages pip would install, ~3x faster (docs/decisions.md).
# It runs in the background while the jars, the browser and the tools venv are fetched.
# Then every module is compiled to bytecode once: uv does not, and where PYTHONDONTWRITEBYTECODE is
# set (many CI and container images) Python would otherwise compile pandas, pyspark and mlflow from
# source in every process it starts — `import mlflow` 9.0 -> 4.0 s, `mlflow server` 29 -> 14 s.
# (The recipe's name is part of the stamp, so a venv installed without it is compiled once.)
RECIPE="uv+compileall"
want=$(hash_of $(ls requirements/*.txt | grep -v tools.txt) requirements/lock/app.txt <(echo "$RECIPE"))
venv_pid=
if [[ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$want" ]]; then
  say "creating virtualenv $VENV and installing pinned Python dependencies (in the background)"
  (
    set -e
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade -r requirements/bootstrap.txt
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -r requirements/dev.txt -c requirements/lock/app.txt
    "$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib"
    echo "$want" > "$VENV/.stamp"
  ) > var/log/setup-venv.log 2>&1 &
  venv_pid=$!
  # a failing step below must not leave the install running
  trap 'pkill -P "$venv_pid" 2>/dev/null; kill "$venv_pid" 2>/dev/null; true' EXIT
else
  say "virtualenv $VENV up to date"
fi

# --- JVM artifacts ---------------------------------------------------------------------------
# fetch NAME POM [extra mvn args]: copy the runtime dependencies of POM into var/jars/NAME
fetch_jars() {
  local name=$1 pom=$2; shift 2
  local dest=$JARS/$name want
  want=$(hash_of "$pom" scripts/jvm/settings.xml; echo "$*")
  if [[ "$(cat "$dest/.stamp" 2>/dev/null)" == "$want" ]]; then
    say "jars $dest up to date"; return
  fi
  say "fetching $name jars from Maven Central into $dest"
  rm -rf "$dest.tmp"
  mvn "${MVN_OPTS[@]}" -f "$pom" dependency:copy-dependencies \
      -DoutputDirectory="$ROOT/$dest.tmp" -DincludeScope=runtime "$@" \
    || die "could not fetch the $name jars (is Maven Central reachable?)"
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  echo "$want" > "$dest/.stamp"
}
mkdir -p "$JARS"
# Spark ships Scala, Hadoop client, slf4j, compression codecs and antlr itself: take only the rest.
fetch_jars spark scripts/jvm/spark.pom.xml \
  -DexcludeArtifactIds=antlr4-runtime,hadoop-client-api,hadoop-client-runtime,jsr305,lz4-java,scala-library,scala-parallel-collections_2.13,slf4j-api,snappy-java,spark-tags_2.13
fetch_jars kafka scripts/jvm/kafka.pom.xml

# --- Debian's chromium for the dashboard's browser tests -----------------------------------
# Only the browser tests need it (they skip, saying why, without it): a user who is not root and has
# no chromium still gets a working demo; as root a failed install stops setup.
if [[ "$(id -u)" -eq 0 ]]; then
  scripts/setup_browser.sh
elif ! scripts/setup_browser.sh 2>/dev/null; then
  echo "[setup] note: no /usr/bin/chromium and not root: the browser tests will be skipped (as root: make browser)" >&2
fi

# --- tools virtualenv (checkov etc.; conflicting deps, hence separate) ----------------------
if [[ -x scripts/setup_tools.sh ]]; then
  scripts/setup_tools.sh
fi

if [[ -n "$venv_pid" ]]; then
  wait "$venv_pid" || { cat var/log/setup-venv.log >&2; die "could not install the Python dependencies into $VENV (log above: var/log/setup-venv.log)"; }
  trap - EXIT
  say "virtualenv $VENV ready"
fi

# --- JVM class archive of a local Spark driver (lib/spark.py: each Spark process starts ~3 s sooner) --
# valid only for this JDK, these jars and this pyspark: redone when one of them changes
archive=$JARS/spark/classes.jsa
want=$({ cat "$JARS/spark/.stamp" "$VENV/.stamp" tools/spark_class_archive.py; java -version 2>&1; } | sha256sum | cut -c1-16)
if [[ "$(cat "$JARS/spark/.classes.stamp" 2>/dev/null)" != "$want" || ! -f "$archive" ]]; then
  say "writing the JVM class archive of a local Spark driver ($archive)"
  rm -f "$archive"
  if "$VENV/bin/python" -m tools.spark_class_archive --out "$archive" > var/log/setup-class-archive.log 2>&1; then
    echo "$want" > "$JARS/spark/.classes.stamp"
  else  # an optimisation only: Spark starts without it, as before
    say "warning: no class archive (Spark starts ~3 s slower; see var/log/setup-class-archive.log)"
  fi
else
  say "JVM class archive up to date"
fi

say "ready"
