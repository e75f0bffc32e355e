package dev.nshap.io;

/** RFC 4180 cells for the CSV files every result writes beside its JSON. */
public final class Csv {
    private Csv() {}

    /** The text as one CSV cell: quoted (quotes doubled) when it holds a comma, a quote or a line break. */
    public static String cell(String s) {
        if (s.indexOf(',') < 0 && s.indexOf('"') < 0 && s.indexOf('\n') < 0 && s.indexOf('\r') < 0) return s;
        return '"' + s.replace("\"", "\"\"") + '"';
    }
}
