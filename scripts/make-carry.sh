#!/usr/bin/env bash
# Builds, here (Maven, a JDK, nvcc; offline from what a `mvn verify` has cached), everything a GPU machine without
# Java or network needs for scripts/gpu-check.sh, into .carry/ (git-ignored; carried next to the tracked tree):
#   nshap.jar        the shaded jar with the CUDA fatbin, without OpenBLAS natives (the GPU check needs only the
#                    CUDA path and the pure-Java CPU reference, which nshap falls back to when they are absent)
#   nshap-tests.jar  the test classes       junit/  the JUnit jars (copied by the POM at package time)
#   jre.tar.gz       a jlinked Java runtime COMMIT  the commit built
# What travels (tracked tree + untracked files git does not ignore + .carry) must stay under 64 MiB: this script
# prints the total and fails when it is over.
#   bash scripts/make-carry.sh        then, on the GPU machine: bash scripts/gpu-check.sh   (carry .carry)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_MIB="${CARRY_LIMIT_MIB:-64}"
JDK="${JLINK_JDK:-/usr/lib/jvm/temurin-25-jdk-amd64}"
MODULES="${JRE_MODULES:-java.base,java.logging,java.management,java.sql,jdk.incubator.vector,jdk.unsupported,jdk.zipfs}"

[ -x "$JDK/bin/jlink" ] || { echo "make-carry: no jlink at $JDK (set JLINK_JDK)" >&2; exit 1; }
echo "[carry] building the shaded jar and the test classes (offline)"
mvn -B -q -o -DskipTests package
[ -f target/classes/cuda/nshap.fatbin ] || { echo "make-carry: target/classes/cuda/nshap.fatbin is missing: nvcc is needed to build the kernels" >&2; exit 1; }
ls target/junit-libs/junit-platform-launcher-*.jar >/dev/null 2>&1 || { echo "make-carry: target/junit-libs has no JUnit launcher (the POM copies it at package time)" >&2; exit 1; }

rm -rf .carry .carry.tmp
mkdir -p .carry.tmp/junit
# The shaded jar without what the GPU check never loads: native libraries under org/bytedeco (OpenBLAS and its
# JavaCPP presets), JCuda's NVRTC and PTX-compiler bindings (the kernels come prebuilt), and the tokenizer
# encodings other than GPT-2's r50k_base (the registry is lazy), and Hazelcast (scale-out only; the GPU check never
# starts a member).
python3 - target/nshap.jar .carry.tmp/nshap.jar <<'PY'
import re, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
unused = re.compile(r"^org/bytedeco/.*(/(linux|windows|macosx|android|ios)-[^/]+/|\.(so(\.\d+)*|dll|dylib|jnilib)$)"
                    r"|^lib/libJNv(PTXCompiler|rtc)-"
                    r"|^com/knuddels/jtokkit/(o200k|cl100k|p50k)_base\.tiktoken$"
                    r"|^com/hazelcast/")
dropped = {}
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        m = unused.search(item.filename)
        if m:
            key = "org/bytedeco natives" if item.filename.startswith("org/bytedeco/") else "NVRTC/PTX compiler" if item.filename.startswith("lib/") else "Hazelcast" if item.filename.startswith("com/hazelcast/") else "other encodings"
            dropped[key] = dropped.get(key, 0) + item.compress_size
            continue
        zout.writestr(item, zin.read(item.filename))
print("[carry] nshap.jar without " + (", ".join(f"{k} ({v / 2**20:.1f} MiB)" for k, v in dropped.items()) or "anything left out"))
PY
unzip -l .carry.tmp/nshap.jar > .carry.tmp/jar-list.txt
grep -q 'cuda/nshap.fatbin' .carry.tmp/jar-list.txt || { echo "make-carry: the jar has no fatbin" >&2; exit 1; }
rm .carry.tmp/jar-list.txt
"$JDK/bin/jar" cf .carry.tmp/nshap-tests.jar -C target/test-classes .
cp target/junit-libs/*.jar .carry.tmp/junit/

echo "[carry] jlinking a JRE ($MODULES)"
tmp="$(mktemp -d)"
"$JDK/bin/jlink" --add-modules "$MODULES" --strip-debug --no-man-pages --no-header-files --compress=zip-9 --output "$tmp/jre"
tar czf .carry.tmp/jre.tar.gz -C "$tmp" jre
rm -rf "$tmp"
git rev-parse HEAD > .carry.tmp/COMMIT 2>/dev/null || true

# What travels: the tracked tree, the untracked files git does not ignore, and .carry.
tree_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
carry_bytes=$(du -sb .carry.tmp | cut -f1)
total=$((tree_bytes + carry_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
du -b .carry.tmp/* .carry.tmp/junit | awk '{printf "  %-34s %6.1f MiB\n", $2, $1 / 1048576}' | sed 's/\.carry\.tmp/.carry/'
echo "[carry] tree $(mib "$tree_bytes") MiB + .carry $(mib "$carry_bytes") MiB = $(mib "$total") MiB of $LIMIT_MIB MiB"
if [ ! -e models/default ]; then
  echo "[carry] note: models/default is not in the tree yet; up to 24 MiB of it leaves $(mib $((LIMIT_MIB * 1048576 - total - 24 * 1048576))) MiB"
fi
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  rm -rf .carry.tmp
  echo "make-carry: $(mib "$total") MiB would travel, over the $LIMIT_MIB MiB limit: nothing written" >&2
  exit 1
fi
mv .carry.tmp .carry
echo "[carry] ready: .carry ($(mib "$carry_bytes") MiB)"
