package io.gradshape.cli;

/**
 * An input file that reads well but is not what the command needs: wrong rank or shape, or values
 * that do not convert to the element type the kernel takes. The message starts with the file, e.g.
 * {@code "g.npy: expected shape (64, 3, 3, 3) (the shape of w.npy), got (64, 3, 3)"}. Exit status 1.
 */
public class InputException extends Exception {
    private static final long serialVersionUID = 1L;

    public InputException(String message) {
        super(message);
    }

    public InputException(String message, Throwable cause) {
        super(message, cause);
    }
}
