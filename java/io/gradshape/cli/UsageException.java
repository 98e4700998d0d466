package io.gradshape.cli;

/**
 * A command line that cannot run as written: an unknown option, a missing required option, or a
 * value that does not parse or is out of range. The message names the option, e.g.
 * {@code "--lr: 'abc' is not a number"}. Exit status 2.
 */
public class UsageException extends Exception {
    private static final long serialVersionUID = 1L;

    public UsageException(String message) {
        super(message);
    }
}
