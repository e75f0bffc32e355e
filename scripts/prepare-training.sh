#!/usr/bin/env bash
# Step 1 of 3 of training the default model (see README, "Default model"). Runs HERE (a machine with a JDK and
# Maven, no GPU needed): builds .carry/ (ignored by git) for a GPU machine that has PyTorch but no Java, no
# tokenizer and no network:
#   nshap.jar + jre.tar.gz   (via scripts/make-carry.sh when present, which also adds the GPU test jars)
#   tokens.bin, tokens.val.bin, tokens.json   (nshap datasets tokenize over ../shared/corpora)
# Then: the device tool's run(command="bash scripts/train-default-model.sh", carry=[".carry"]),
# and:  bash scripts/finish-default-model.sh <the fetched files folder>
# Usage: bash scripts/prepare-training.sh [--corpora DIR]   (extra arguments go to `nshap datasets tokenize`)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=$((64 * 1024 * 1024))   # the device tool carries at most 64 MiB

if [ -f scripts/make-carry.sh ]; then
  echo "[prepare] building the carry with scripts/make-carry.sh"
  bash scripts/make-carry.sh
else
  # Without the CUDA branch's recipe: the jar and a jlinked JRE are all training needs (the CUDA loss check then
  # reports that this jar has no CUDA backend).
  JDK="${JLINK_JDK:-/usr/lib/jvm/temurin-25-jdk-amd64}"
  [ -x "$JDK/bin/jlink" ] || JDK="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
  [ -x "$JDK/bin/jlink" ] || { echo "prepare-training: no jlink found (set JLINK_JDK)" >&2; exit 1; }
  echo "[prepare] no scripts/make-carry.sh: building the jar and a JRE from $JDK"
  mvn -B -q -o -DskipTests package
  rm -rf .carry .carry.tmp
  mkdir -p .carry.tmp
  cp target/nshap.jar .carry.tmp/nshap.jar
  tmp="$(mktemp -d)"
  "$JDK/bin/jlink" --add-modules "${JRE_MODULES:-java.base,java.logging,java.management,java.sql,jdk.incubator.vector,jdk.unsupported,jdk.zipfs}" \
    --strip-debug --no-man-pages --no-header-files --compress=zip-6 --output "$tmp/jre"
  tar czf .carry.tmp/jre.tar.gz -C "$tmp" jre
  rm -rf "$tmp"
  git rev-parse HEAD > .carry.tmp/COMMIT 2>/dev/null || true
  mv .carry.tmp .carry
fi

echo "[prepare] tokenizing the training corpora into .carry/"
java --add-modules jdk.incubator.vector -jar .carry/nshap.jar datasets tokenize --out .carry/tokens.bin "$@"

total=$(du -cb .carry/* | tail -1 | cut -f1)
if [ "$total" -gt "$LIMIT" ]; then
  # The GPU test jars are not needed for training.
  rm -f .carry/nshap-tests.jar .carry/junit-platform-console-standalone.jar
  total=$(du -cb .carry/* | tail -1 | cut -f1)
  echo "[prepare] over the carry limit: dropped the GPU test jars"
fi
du -b .carry/* | awk '{printf "  %-48s %6.1f MiB\n", $2, $1 / 1048576}'
printf "  %-48s %6.1f MiB (limit 64 MiB)\n" "total" "$(echo "$total" | awk '{print $1 / 1048576}')"
if [ "$total" -gt "$LIMIT" ]; then
  echo "prepare-training: .carry is $total bytes, over the 64 MiB the device tool carries" >&2
  exit 1
fi
echo "[prepare] done. Next, on the GPU machine: run(command=\"bash scripts/train-default-model.sh\", carry=[\".carry\"])"
