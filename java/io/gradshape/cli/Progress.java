package io.gradshape.cli;

import java.io.PrintStream;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * A progress line for long commands, on stderr. On a console it redraws one line in place
 * ({@code "\r..."}, at most every 100 ms); otherwise (a log file, a CI job) it writes plain lines, at
 * most one every 5 s, so logs stay short. {@link #done} always writes its line; {@link #close} ends
 * the line. Get one from {@link Terminal#progress()}.
 */
public final class Progress implements AutoCloseable {
    static final long CONSOLE_INTERVAL_NANOS = 100_000_000L;
    static final long PLAIN_INTERVAL_NANOS = 5_000_000_000L;

    private final PrintStream err;
    private final boolean console;
    private final LongSupplier clock;
    private long lastWrite;
    private boolean written;
    private int shownLength; // console: characters of the line now showing, 0 when none

    Progress(PrintStream err, boolean console) {
        this(err, console, System::nanoTime);
    }

    Progress(PrintStream err, boolean console, LongSupplier clock) {
        this.err = Objects.requireNonNull(err, "err");
        this.console = console;
        this.clock = clock;
    }

    /** Shows {@code status}, unless a line was shown very recently. */
    public void update(String status) {
        long now = clock.getAsLong();
        if (written && now - lastWrite < (console ? CONSOLE_INTERVAL_NANOS : PLAIN_INTERVAL_NANOS)) {
            return;
        }
        show(status);
        lastWrite = now;
        written = true;
    }

    /** Shows {@code "task: done/total (pct%)"}. */
    public void update(String task, long done, long total) {
        long pct = total > 0 ? Math.min(100, done * 100 / total) : 100;
        update(task + ": " + done + "/" + total + " (" + pct + "%)");
    }

    /** Shows {@code status} as a finished line, always. */
    public void done(String status) {
        show(status);
        if (console) {
            err.print('\n');
            shownLength = 0;
        }
        err.flush();
        written = true;
        lastWrite = clock.getAsLong();
    }

    /** Ends the line on a console (later output starts on a fresh line). Idempotent. */
    @Override
    public void close() {
        if (console && shownLength > 0) {
            err.print('\n');
            shownLength = 0;
            err.flush();
        }
    }

    private void show(String status) {
        String line = status.replace('\n', ' ').replace('\r', ' ');
        if (console) {
            // Blank out what is left of a longer previous line.
            err.print("\r" + line + " ".repeat(Math.max(0, shownLength - line.length())));
            shownLength = line.length();
        } else {
            err.println(line);
        }
        err.flush();
    }
}
