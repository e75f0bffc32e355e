#!/usr/bin/env bash
# Builds, on a machine with Maven, a JDK and nvcc, everything a GPU machine without Java needs to run the GPU tests
# and the benchmark, into .carry/ (ignored by git, carried to the GPU machine by the device tool):
#   nshap.jar (shaded, with the CUDA fatbin)  nshap-tests.jar (test classes)
#   junit-platform-console-standalone.jar     jre.tar.gz (a jlinked Java 25 runtime)
# Then, on the GPU machine: bash scripts/gpu-check.sh   (see cuda/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
JDK="${JLINK_JDK:-/usr/lib/jvm/temurin-25-jdk-amd64}"
JUNIT_VERSION=1.10.3
MODULES="${JRE_MODULES:-java.base,java.logging,java.management,java.sql,jdk.incubator.vector,jdk.unsupported,jdk.zipfs}"

[ -x "$JDK/bin/jlink" ] || { echo "make-carry: no jlink at $JDK (set JLINK_JDK)" >&2; exit 1; }
echo "[carry] building the shaded jar and the test classes"
mvn -B -q -o -DskipTests package
[ -f target/classes/cuda/nshap.fatbin ] || { echo "make-carry: target/classes/cuda/nshap.fatbin is missing: nvcc is needed to build the kernels" >&2; exit 1; }
unzip -l target/nshap.jar > /tmp/nshap-jar-list.txt; grep -q 'cuda/nshap.fatbin' /tmp/nshap-jar-list.txt || { echo "make-carry: the jar has no fatbin" >&2; exit 1; }

rm -rf .carry .carry.tmp
mkdir -p .carry.tmp
cp target/nshap.jar .carry.tmp/nshap.jar
"$JDK/bin/jar" cf .carry.tmp/nshap-tests.jar -C target/test-classes .

jj="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$JUNIT_VERSION/junit-platform-console-standalone-$JUNIT_VERSION.jar"
if [ ! -f "$jj" ]; then
  echo "[carry] fetching junit-platform-console-standalone $JUNIT_VERSION"
  mvn -B -q dependency:get -Dartifact="org.junit.platform:junit-platform-console-standalone:$JUNIT_VERSION"
fi
cp "$jj" .carry.tmp/junit-platform-console-standalone.jar

echo "[carry] jlinking a JRE ($MODULES)"
tmp="$(mktemp -d)"
"$JDK/bin/jlink" --add-modules "$MODULES" --strip-debug --no-man-pages --no-header-files --compress=zip-6 --output "$tmp/jre"
tar czf .carry.tmp/jre.tar.gz -C "$tmp" jre
rm -rf "$tmp"
git rev-parse HEAD > .carry.tmp/COMMIT 2>/dev/null || true
mv .carry.tmp .carry
du -sh .carry/* .carry
