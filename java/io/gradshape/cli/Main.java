package io.gradshape.cli;

import io.gradshape.Gradshape;
import io.gradshape.GradshapeException;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The gradshape command line: {@code java -jar target/gradshape.jar <command> [options]}.
 *
 * <p>Exit status: {@value #EXIT_OK} success, {@value #EXIT_RUNTIME_ERROR} runtime error (a file that
 * is missing or malformed, unusable data, a native or CUDA failure), {@value #EXIT_USAGE} usage error
 * (unknown command or option, missing or bad value). Errors are one line on stderr starting
 * {@code "gradshape: "}; {@code --verbose} adds the stack trace.
 */
public final class Main {
    public static final int EXIT_OK = 0;
    public static final int EXIT_RUNTIME_ERROR = 1;
    public static final int EXIT_USAGE = 2;

    /** Every command, in the order {@code --help} lists them. A new command is one more line here. */
    static final List<Command> COMMANDS = List.of(
            new InfoCommand(),
            new DependenceCommand(),
            new SgdStepCommand(),
            new PgtCommand(),
            new DemoCommand());

    private static final int HELP_COLUMN_MAX = 34;

    private Main() {}

    public static void main(String[] args) {
        int status = run(args, new Terminal(System.out, System.err, System.console() != null), COMMANDS);
        System.out.flush();
        System.err.flush();
        System.exit(status);
    }

    /** Runs one command line, writing to {@code out} and {@code err}; returns the exit status (never exits). */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        return run(args, new Terminal(out, err, false), COMMANDS);
    }

    static int run(String[] args, Terminal terminal, List<Command> commands) {
        List<String> words = Arrays.asList(args);
        boolean verbose = words.contains("--verbose");
        Command resolved = null;
        try {
            int i = 0;
            for (; i < words.size() && words.get(i).startsWith("-"); i++) {
                switch (words.get(i)) {
                    case "--help", "-h" -> {
                        terminal.out().print(globalHelp(commands));
                        return EXIT_OK;
                    }
                    case "--version" -> {
                        terminal.out().println("gradshape " + Gradshape.version());
                        return EXIT_OK;
                    }
                    case "--verbose" -> { }
                    default -> throw new UsageException("unknown option " + words.get(i)
                            + " before the command (global options: --help, --version, --verbose)");
                }
            }
            if (i == words.size()) {
                terminal.out().print(globalHelp(commands));
                return EXIT_OK;
            }
            String command = words.get(i);
            List<String> rest = words.subList(i + 1, words.size());
            if (command.equals("help")) {
                if (rest.isEmpty()) {
                    terminal.out().print(globalHelp(commands));
                    return EXIT_OK;
                }
                Command c = find(commands, rest.get(0));
                terminal.out().print(help(c));
                return EXIT_OK;
            }
            Command c = find(commands, command);
            resolved = c;
            if (rest.contains("--help") || rest.contains("-h")) {
                terminal.out().print(help(c));
                return EXIT_OK;
            }
            Args parsed = Args.parse(c, rest);
            if (parsed.has("backend")) {
                parsed.backendSelection(); // an explicit --backend that cannot run fails before any work
            }
            return c.run(parsed, terminal);
        } catch (UsageException e) {
            String help = resolved == null ? "gradshape --help" : "gradshape " + resolved.name() + " --help";
            terminal.err().println("gradshape: " + e.getMessage() + " (see '" + help + "')");
            if (verbose) {
                e.printStackTrace(terminal.err());
            }
            return EXIT_USAGE;
        } catch (Exception | OutOfMemoryError | StackOverflowError e) {
            terminal.err().println("gradshape: " + message(e) + (verbose ? "" : hintVerbose(e)));
            if (verbose) {
                e.printStackTrace(terminal.err());
            }
            return EXIT_RUNTIME_ERROR;
        } finally {
            terminal.out().flush();
            terminal.err().flush();
        }
    }

    /** The one-line message of a runtime error. */
    static String message(Throwable e) {
        if (e instanceof NoSuchFileException f) {
            return f.getFile() + ": no such file or directory";
        }
        if (e instanceof AccessDeniedException f) {
            return f.getFile() + ": permission denied";
        }
        if (e instanceof NotDirectoryException f) {
            return f.getFile() + ": not a directory";
        }
        if (e instanceof FileAlreadyExistsException f) {
            return f.getFile() + ": already exists" + (f.getReason() == null ? "" : " (" + f.getReason() + ")");
        }
        if (e instanceof FileSystemException f) {
            return f.getFile() + ": " + (f.getReason() == null ? e.getClass().getSimpleName() : f.getReason());
        }
        if (e instanceof OutOfMemoryError) {
            return "out of Java heap memory (raise it, e.g. java -Xmx16g -jar gradshape.jar ...)";
        }
        String text = e.getMessage() == null || e.getMessage().isBlank() ? e.getClass().getName() : e.getMessage();
        if (e instanceof IOException || e instanceof InputException || e instanceof GradshapeException
                || e instanceof IllegalArgumentException || e instanceof IllegalStateException) {
            return firstLine(text);
        }
        return "internal error: " + e.getClass().getName() + ": " + firstLine(text);
    }

    private static String hintVerbose(Throwable e) {
        return message(e).startsWith("internal error") ? " (run with --verbose for the stack trace)" : "";
    }

    private static String firstLine(String text) {
        int nl = text.indexOf('\n');
        return nl < 0 ? text : text.substring(0, nl);
    }

    private static Command find(List<Command> commands, String name) throws UsageException {
        for (Command c : commands) {
            if (c.name().equals(name)) {
                return c;
            }
        }
        List<String> names = commands.stream().map(Command::name).toList();
        String suggestion = Args.suggestion(name, names);
        throw new UsageException("unknown command '" + name + "'" + (suggestion.isEmpty()
                ? "; the commands are " + String.join(", ", names) : suggestion.replace("--", "")));
    }

    // ---- help ---------------------------------------------------------------------------------------

    static String globalHelp(List<Command> commands) {
        StringBuilder s = new StringBuilder();
        s.append("usage: gradshape <command> [options]\n");
        s.append("       gradshape <command> --help\n");
        s.append("       gradshape --version\n\n");
        s.append("GPU kernels with native CPU fallbacks for spatial gradient scaling, a scaled SGD step and the\n");
        s.append("PowerGrad transform. Commands read and write NumPy .npy files (float32, float64, int32, int64).\n\n");
        s.append("commands:\n");
        int width = commands.stream().mapToInt(c -> c.name().length()).max().orElse(0);
        for (Command c : commands) {
            s.append("  ").append(pad(c.name(), width)).append("   ").append(c.summary()).append('\n');
        }
        s.append("\noptions of every command:\n");
        appendOptions(s, List.of(Args.BACKEND, Args.VERBOSE, Args.HELP));
        s.append("\nexit status: 0 success, 1 runtime error (files, data, native or CUDA failure), 2 usage error\n");
        return s.toString();
    }

    static String help(Command c) {
        StringBuilder s = new StringBuilder("usage: gradshape ").append(c.name());
        boolean optional = false;
        for (Option o : Args.allOptions(c)) {
            if (o.required()) {
                s.append(' ').append(o.syntax());
            } else {
                optional = true;
            }
        }
        s.append(optional ? " [options]\n\n" : "\n\n");
        s.append(c.summary()).append('\n');
        if (!c.details().isEmpty()) {
            s.append('\n').append(c.details());
            if (!c.details().endsWith("\n")) {
                s.append('\n');
            }
        }
        s.append("\noptions:\n");
        appendOptions(s, Args.allOptions(c));
        return s.toString();
    }

    private static void appendOptions(StringBuilder s, List<Option> options) {
        List<String> left = new ArrayList<>();
        for (Option o : options) {
            left.add(o == Args.HELP ? "-h, --help" : o.syntax());
        }
        int width = Math.min(HELP_COLUMN_MAX, left.stream().mapToInt(String::length).max().orElse(0));
        for (int i = 0; i < options.size(); i++) {
            Option o = options.get(i);
            StringBuilder text = new StringBuilder(o.help());
            if (o.required()) {
                text.append(" (required)");
            } else if (o.defaultValue() != null) {
                text.append(" (default: ").append(o.defaultValue()).append(')');
            }
            String l = left.get(i);
            s.append("  ").append(l);
            if (l.length() > width) {
                s.append('\n').append(" ".repeat(width + 2));
            } else {
                s.append(" ".repeat(width - l.length()));
            }
            s.append("   ").append(text.toString().replace("\n", "\n" + " ".repeat(width + 5))).append('\n');
        }
    }

    private static String pad(String text, int width) {
        return text + " ".repeat(Math.max(0, width - text.length()));
    }
}
