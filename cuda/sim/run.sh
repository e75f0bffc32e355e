#!/usr/bin/env bash
# Checks the kernels' logic on the CPU through the host emulation in cuda_sim.h (no GPU needed): every kernel
# against a double reference, and the noise RNG against dev.nshap.backend.CounterRng (when target/classes exists).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
tmp="$(mktemp -d)"
g++ -std=c++20 -O2 -pthread -o "$tmp/sim_test" "$here/sim_test.cpp"
rngfile=""
if [ -d "$root/target/classes/dev/nshap/backend" ]; then
  cat > "$tmp/RngDump.java" <<'J'
public class RngDump {
    public static void main(String[] a) {
        long[] seeds = {0L, 1L, -1L, 42L, -3L, 0x123456789ABCDEFL, Long.MIN_VALUE};
        java.util.Random r = new java.util.Random(5);
        StringBuilder sb = new StringBuilder();
        for (long s : seeds)
            for (int i = 0; i < 3000; i++) {
                int p = i < 100 ? i : r.nextInt(2048), u = i < 100 ? 3071 - i : r.nextInt(1 << 20);
                sb.append(s).append(' ').append(p).append(' ').append(u).append(' ')
                  .append(Float.toHexString(dev.nshap.backend.CounterRng.gaussian(s, p, u))).append('\n');
            }
        System.out.print(sb);
    }
}
J
  java -cp "$root/target/classes" "$tmp/RngDump.java" > "$tmp/rng.txt"
  rngfile="$tmp/rng.txt"
fi
"$tmp/sim_test" $rngfile
