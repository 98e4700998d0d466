package io.gradshape.cli;

import io.gradshape.Gradshape;
import io.gradshape.GradshapeException;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.MissingParameterException;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.OverwrittenOptionException;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * The gradshape command line: {@code java -jar target/gradshape-core.jar <command> [options]}, parsed
 * by picocli. The core's commands come first; every {@link AddOnCommand} on the classpath (found with
 * {@link ServiceLoader}, e.g. {@code train}) is added after them.
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

    private Main() {}

    /** The core's commands, fresh (picocli writes the options into them), in the order {@code --help} lists them. */
    static List<Object> builtInCommands() {
        return List.of(new InfoCommand(), new DependenceCommand(), new SgdStepCommand(), new PgtCommand(), new DemoCommand());
    }

    public static void main(String[] args) {
        int status = run(args, new Terminal(System.out, System.err, System.console() != null), builtInCommands());
        System.out.flush();
        System.err.flush();
        System.exit(status);
    }

    /** Runs one command line, writing to {@code out} and {@code err}; returns the exit status (never exits). */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        return run(args, new Terminal(out, err, false), builtInCommands());
    }

    /** The global options, before the command. */
    @Command(name = "gradshape")
    static final class Root {
        @Option(names = {"-h", "--help"}, usageHelp = true)
        boolean help;

        @Option(names = "--version", versionHelp = true)
        boolean version;

        @Option(names = "--verbose")
        boolean verbose;
    }

    /** {@code gradshape help [command]}: the same text as {@code gradshape [command] --help}. */
    @Command(name = "help", hidden = true, header = "show the help of a command")
    static final class Help implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Parameters(arity = "0..1", paramLabel = "COMMAND")
        String command;

        PrintStream out;

        @Override
        public Integer call() {
            CommandLine root = spec.root().commandLine();
            if (command == null) {
                root.usage(out);
                return EXIT_OK;
            }
            CommandLine c = root.getSubcommands().get(command);
            if (c == null || c.getCommandSpec().usageMessage().hidden()) {
                throw new ParameterException(root, unknownCommand(root, command));
            }
            c.usage(out);
            return EXIT_OK;
        }
    }

    static int run(String[] args, Terminal terminal, List<?> commands) {
        boolean verbose = Arrays.asList(args).contains("--verbose");
        CommandLine root = null;
        try {
            root = commandLine(terminal, commands);
            ParseResult parsed = root.parseArgs(args);
            for (ParseResult p = parsed; p != null; p = p.subcommand()) {
                if (p.isUsageHelpRequested()) {
                    p.commandSpec().commandLine().usage(terminal.out());
                    return EXIT_OK;
                }
            }
            if (parsed.isVersionHelpRequested()) {
                terminal.out().println("gradshape " + Gradshape.version());
                return EXIT_OK;
            }
            List<CommandLine> chain = parsed.asCommandLineList();
            Object command = chain.get(chain.size() - 1).getCommand();
            if (command instanceof Root) {
                root.usage(terminal.out());
                return EXIT_OK;
            }
            if (command instanceof KernelCommand k) {
                k.terminal = terminal;
            } else if (command instanceof Help h) {
                h.out = terminal.out();
            } else if (command instanceof AddOnCommand a) {
                a.setTerminal(terminal);
            }
            if (!(command instanceof Callable<?> callable) || !(callable.call() instanceof Integer status)) {
                throw new IllegalStateException(command.getClass().getName() + " is not a Callable<Integer>");
            }
            return status;
        } catch (ParameterException e) {
            CommandLine where = e.getCommandLine();
            if (where != null && (Arrays.asList(args).contains("--help") || Arrays.asList(args).contains("-h"))) {
                where.usage(terminal.out()); // help wins over a mistake on the same line
                return EXIT_OK;
            }
            String help = where == null || where == root ? "gradshape --help" : "gradshape " + where.getCommandName() + " --help";
            terminal.err().println("gradshape: " + usageMessage(e, root) + " (see '" + help + "')");
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

    /** The root command with {@code commands}, then every add-on that loads, and the hidden {@code help}. */
    static CommandLine commandLine(Terminal terminal, List<?> commands) {
        return commandLine(terminal, commands, Main.class.getClassLoader());
    }

    /** As {@link #commandLine(Terminal, List)}, with the add-ons {@code addOnLoader} finds. */
    static CommandLine commandLine(Terminal terminal, List<?> commands, ClassLoader addOnLoader) {
        CommandLine root = new CommandLine(new Root());
        for (Object c : commands) {
            CommandLine sub = new CommandLine(c);
            for (OptionSpec o : sub.getCommandSpec().options()) {
                registerWords(sub, o.type());
            }
            root.addSubcommand(sub);
        }
        addOns(root, terminal.err(), addOnLoader);
        root.addSubcommand(new Help());
        UsageText.install(root);
        // picocli writes nothing itself (help and errors go through run), but add-ons may use getOut/getErr.
        root.setOut(new PrintWriter(terminal.out(), true));
        root.setErr(new PrintWriter(terminal.err(), true));
        return root;
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void registerWords(CommandLine sub, Class<?> type) {
        if (type.isEnum()) {
            sub.registerConverter((Class) type, new OptionValues.Word(type));
        }
    }

    /**
     * Adds the {@link AddOnCommand}s found on the classpath. One that cannot be loaded or added (a broken
     * jar, a name already taken) is left out with a warning: the other commands still run.
     */
    private static void addOns(CommandLine root, PrintStream err, ClassLoader loader) {
        Iterator<AddOnCommand> found = ServiceLoader.load(AddOnCommand.class, loader).iterator();
        while (true) {
            AddOnCommand addOn;
            try {
                if (!found.hasNext()) {
                    return;
                }
                addOn = found.next();
            } catch (ServiceConfigurationError e) {
                err.println("gradshape: warning: an add-on command was not loaded: " + firstLine(String.valueOf(e.getMessage())));
                continue;
            }
            try {
                CommandLine sub = new CommandLine(addOn);
                if (root.getSubcommands().containsKey(sub.getCommandName()) || sub.getCommandName().equals("help")) {
                    throw new CommandLine.InitializationException("its name '" + sub.getCommandName() + "' is taken");
                }
                root.addSubcommand(sub);
            } catch (CommandLine.InitializationException e) {
                err.println("gradshape: warning: add-on command " + addOn.getClass().getName() + " was not added: "
                        + firstLine(String.valueOf(e.getMessage())));
            }
        }
    }

    // ---- messages -----------------------------------------------------------------------------------

    /** The one-line message of a usage error, naming the option or command. */
    static String usageMessage(ParameterException e, CommandLine root) {
        CommandLine where = e.getCommandLine();
        String command = where == null ? "gradshape" : where.getCommandName();
        ArgSpec arg = e.getArgSpec();
        if (e instanceof UnmatchedArgumentException u && !u.getUnmatched().isEmpty()) {
            String token = u.getUnmatched().get(0);
            if (where == root) {
                return token.startsWith("-") ? "unknown option " + token
                        + " before the command (global options: --help, --version, --verbose)" : unknownCommand(root, token);
            }
            List<String> names = where.getCommandSpec().options().stream().map(OptionSpec::longestName).toList();
            if (token.startsWith("--")) {
                int eq = token.indexOf('=');
                String name = eq < 0 ? token : token.substring(0, eq);
                return "unknown option " + name + " for " + command + suggestion(name, names);
            }
            if (token.length() > 1 && token.startsWith("-") && !Character.isDigit(token.charAt(1)) && token.charAt(1) != '.') {
                return "unknown option " + token + suggestion(token, names);
            }
            return "unexpected argument '" + token + "': " + command
                    + (where.getCommandSpec().positionalParameters().isEmpty() ? " takes only options (--name value)" : "");
        }
        if (e instanceof MissingParameterException m && !m.getMissing().isEmpty()
                && e.getMessage().startsWith("Missing required option")) {
            List<String> missing = m.getMissing().stream().map(Main::name).toList();
            return "missing required option" + (missing.size() > 1 ? "s " : " ") + String.join(", ", missing);
        }
        if (e instanceof OverwrittenOptionException w) {
            arg = w.getOverwritten();
        } else if (e instanceof MissingParameterException m && m.getMissing().size() == 1) {
            arg = m.getMissing().get(0); // "Missing required parameter for option '--lr'": the value is missing
        } else if (arg == null && where != null && e.getMessage() != null) {
            arg = optionNamedIn(e.getMessage(), where.getCommandSpec());
        }
        if (arg instanceof OptionSpec o) {
            if (e instanceof OverwrittenOptionException) {
                List<String> given = o.originalStringValues();
                return o.longestName() + " given more than once" + (given.isEmpty() || o.arity().max() == 0 ? "" : " (first as '" + given.get(0) + "')");
            }
            if (o.arity().max() == 0 && e.getValue() != null) {
                return o.longestName() + " is a flag and takes no value";
            }
            if (e instanceof MissingParameterException || "".equals(e.getValue())
                    || String.valueOf(e.getMessage()).startsWith("Expected parameter for option")) {
                return o.longestName() + ": missing value " + o.paramLabel();
            }
            if (e.getCause() instanceof TypeConversionException t) {
                return o.longestName() + ": '" + e.getValue() + "' " + t.getMessage();
            }
        }
        return firstLine(String.valueOf(e.getMessage()));
    }

    /**
     * The option a picocli message names in quotes ({@code "Expected parameter for option '--lr' but found
     * '--k'"}): some of its exceptions carry the option only in their text.
     */
    private static OptionSpec optionNamedIn(String message, CommandSpec spec) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("option '(-[^']*)'").matcher(message);
        return m.find() ? spec.findOption(m.group(1)) : null;
    }

    private static String name(ArgSpec a) {
        return a instanceof OptionSpec o ? o.longestName() : a.paramLabel();
    }

    static String unknownCommand(CommandLine root, String name) {
        List<String> names = UsageText.visibleCommands(root).stream().map(CommandLine::getCommandName).toList();
        String suggestion = suggestion(name, names);
        return "unknown command '" + name + "'" + (suggestion.isEmpty()
                ? "; the commands are " + String.join(", ", names) : suggestion);
    }

    /** {@code " (did you mean x?)"} for a near miss among {@code names} (same dashes as written), else empty. */
    static String suggestion(String given, List<String> names) {
        String word = given.replaceFirst("^-+", "");
        if (word.length() < 3) {
            return ""; // everything is a near miss of a word this short
        }
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String name : names) {
            int d = editDistance(word, name.replaceFirst("^-+", ""));
            if (d < bestDistance) {
                best = name;
                bestDistance = d;
            }
        }
        return best != null && bestDistance <= Math.max(1, Math.min(2, word.length() / 3))
                ? " (did you mean " + best + "?)" : "";
    }

    static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitute = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(substitute, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
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
            return "out of Java heap memory (raise it, e.g. java -Xmx16g -jar gradshape-core.jar ...)";
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
}
