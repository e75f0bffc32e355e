package dev.nshap.shapley;

import dev.nshap.NshapException;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

public enum Estimator {
    EXACT, PERMUTATION, ANTITHETIC, TMC, TMAB, REGRESSION, KERNELSHAP;

    public String id() { return name().toLowerCase(Locale.ROOT); }

    public static Estimator parse(String s) {
        for (Estimator e : values()) if (e.id().equalsIgnoreCase(s.trim())) return e;
        throw new NshapException("unknown estimator '" + s + "' (expected one of "
                + Arrays.stream(values()).map(Estimator::id).collect(Collectors.joining(", ")) + ")");
    }

    boolean truncates() { return this == TMC || this == TMAB; }
}
