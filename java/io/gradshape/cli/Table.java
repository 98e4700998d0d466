package io.gradshape.cli;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A text table with a header and a rule, columns right-aligned (numbers line up) unless
 * {@link #alignLeft} says otherwise, two spaces apart. E.g. the demo's timings:
 * <pre>
 * Table t = new Table("kernel", "backend", "time", "throughput").alignLeft(0);
 * t.row("dependence 3x3", "cuda", Units.duration(s), Units.rate(pairs / s, "pairs"));
 * t.print(out);
 * </pre>
 */
public final class Table {
    private final String[] headers;
    private final boolean[] left;
    private final List<String[]> rows = new ArrayList<>();

    public Table(String... headers) {
        if (headers.length == 0) {
            throw new IllegalArgumentException("headers: at least one column");
        }
        this.headers = headers.clone();
        this.left = new boolean[headers.length];
    }

    /** Left-aligns the given columns (0-based), e.g. a column of names. */
    public Table alignLeft(int... columns) {
        for (int c : columns) {
            if (c < 0 || c >= headers.length) {
                throw new IndexOutOfBoundsException("column " + c + " of " + headers.length);
            }
            left[c] = true;
        }
        return this;
    }

    /** Adds a row: one cell per column, each printed with {@link String#valueOf(Object)}. */
    public Table row(Object... cells) {
        if (cells.length != headers.length) {
            throw new IllegalArgumentException("row: " + cells.length + " cells for " + headers.length + " columns");
        }
        rows.add(Arrays.stream(cells).map(String::valueOf).toArray(String[]::new));
        return this;
    }

    public void print(PrintStream out) {
        out.print(this);
    }

    /** The table, one line per row, each ending with '\n'. */
    @Override
    public String toString() {
        int[] width = new int[headers.length];
        for (int c = 0; c < headers.length; c++) {
            width[c] = headers[c].length();
            for (String[] r : rows) {
                width[c] = Math.max(width[c], r[c].length());
            }
        }
        StringBuilder s = new StringBuilder();
        line(s, headers, width);
        String[] rule = new String[headers.length];
        for (int c = 0; c < headers.length; c++) {
            rule[c] = "-".repeat(width[c]);
        }
        line(s, rule, width);
        for (String[] r : rows) {
            line(s, r, width);
        }
        return s.toString();
    }

    private void line(StringBuilder s, String[] cells, int[] width) {
        StringBuilder l = new StringBuilder();
        for (int c = 0; c < cells.length; c++) {
            String pad = " ".repeat(width[c] - cells[c].length());
            l.append(c == 0 ? "" : "  ").append(left[c] ? cells[c] + pad : pad + cells[c]);
        }
        s.append(l.toString().stripTrailing()).append('\n');
    }
}
