#!/usr/bin/env bash
# Fetch the GCP-only JVM jars (Managed Kafka OAUTHBEARER login handler + Google auth libraries)
# from Maven Central into var/jars/gcp/, from scripts/jvm/gcp.pom.xml. Idempotent: a second run
# with an unchanged pom only re-checks the local Maven cache. scripts/submit.sh uploads the jars.
#
# Usage: scripts/fetch_gcp_jars.sh [--out DIR]      (default: var/jars/gcp)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="var/jars/gcp"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch_gcp_jars: unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v mvn >/dev/null 2>&1 || { echo "fetch_gcp_jars: mvn not found on PATH (apt-get install maven)" >&2; exit 2; }

cd "$ROOT"
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
want="$(cat scripts/jvm/gcp.pom.xml scripts/jvm/settings.xml | sha256sum | cut -c1-16)"
if [[ "$(cat "$OUT/.stamp" 2>/dev/null)" == "$want" ]] && compgen -G "$OUT/*.jar" >/dev/null; then
  echo "fetch_gcp_jars: ${OUT#"$ROOT"/} up to date"
  exit 0
fi
# Fetch into a fresh folder: a stale jar from an older pom must not end up on the cluster classpath.
# settings.xml routes every repository (the handler's pom names Confluent's) to Maven Central.
rm -rf "$OUT.tmp"
mvn -q -B -s scripts/jvm/settings.xml -f scripts/jvm/gcp.pom.xml dependency:copy-dependencies \
  -DoutputDirectory="$OUT.tmp" -DincludeScope=runtime
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "$want" > "$OUT/.stamp"
n=$(find "$OUT" -maxdepth 1 -name '*.jar' | wc -l)
[[ "$n" -gt 0 ]] || { echo "fetch_gcp_jars: no jars were copied to $OUT" >&2; exit 1; }
echo "fetch_gcp_jars: $n jars in ${OUT#"$ROOT"/}"
