package io.gradshape.cli;

import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

/**
 * The help texts, written from picocli's model of each command and installed as its usage message
 * (so {@code --help}, {@code -h} and {@code help <command>} print the same): a usage line with the
 * required options, the summary ({@code @Command(header = ...)}), the details
 * ({@code description}), then the options, the command's own first and the common ones last, each
 * {@code --name VALUE} with its text and {@code (required)} or {@code (default: X)}.
 */
final class UsageText {
    private static final String SECTION = "gradshape";
    private static final int HELP_COLUMN_MAX = 34;

    private UsageText() {}

    /** Makes {@code root}'s and every subcommand's usage message the texts below. */
    static void install(CommandLine root) {
        use(root, global(root));
        for (CommandLine sub : root.getSubcommands().values()) {
            use(sub, command(sub.getCommandSpec()));
        }
    }

    private static void use(CommandLine line, String text) {
        line.setHelpSectionKeys(List.of(SECTION));
        line.getHelpSectionMap().put(SECTION, help -> text);
    }

    /** The subcommands {@code gradshape --help} lists, in the order they were added. */
    static List<CommandLine> visibleCommands(CommandLine root) {
        return root.getSubcommands().values().stream().distinct()
                .filter(c -> !c.getCommandSpec().usageMessage().hidden()).toList();
    }

    static String global(CommandLine root) {
        StringBuilder s = new StringBuilder();
        s.append("usage: gradshape <command> [options]\n");
        s.append("       gradshape <command> --help\n");
        s.append("       gradshape --version\n\n");
        s.append("GPU kernels with native CPU fallbacks for spatial gradient scaling, a scaled SGD step and the\n");
        s.append("PowerGrad transform. Commands read and write NumPy .npy files (float32, float64, int32, int64).\n\n");
        s.append("commands:\n");
        List<CommandLine> commands = visibleCommands(root);
        int width = commands.stream().mapToInt(c -> c.getCommandName().length()).max().orElse(0);
        for (CommandLine c : commands) {
            String name = c.getCommandName();
            s.append("  ").append(name).append(" ".repeat(width - name.length())).append("   ")
                    .append(summary(c.getCommandSpec())).append('\n');
        }
        s.append("\noptions of every command:\n");
        appendOptions(s, List.copyOf(new CommandLine(new CommonOnly()).getCommandSpec().options()));
        s.append("\nexit status: 0 success, 1 runtime error (files, data, native or CUDA failure), 2 usage error\n");
        return s.toString();
    }

    /** Holds only the common options, to list them in the global help as every command shows them. */
    @CommandLine.Command(name = "common")
    private static final class CommonOnly {
        @CommandLine.Mixin
        CommandOptions options;
    }

    static String command(CommandSpec spec) {
        StringBuilder s = new StringBuilder("usage: gradshape ").append(spec.name());
        List<ArgSpec> args = ordered(spec);
        boolean optional = false;
        for (ArgSpec a : args) {
            if (a.required() || a.isPositional()) {
                s.append(' ').append(syntax(a));
            } else {
                optional = true;
            }
        }
        s.append(optional ? " [options]\n\n" : "\n\n");
        s.append(summary(spec)).append('\n');
        String[] details = spec.usageMessage().description();
        if (details.length > 0) {
            s.append('\n');
            for (String line : details) {
                s.append(line).append('\n');
            }
        }
        s.append("\noptions:\n");
        appendOptions(s, args);
        return s.toString();
    }

    /** The command's own options and parameters in declaration order, then the common ones. */
    private static List<ArgSpec> ordered(CommandSpec spec) {
        List<ArgSpec> own = new ArrayList<>();
        List<ArgSpec> common = new ArrayList<>();
        for (OptionSpec o : spec.options()) {
            if (!o.hidden()) {
                (CommandOptions.NAMES.contains(o.longestName()) ? common : own).add(o);
            }
        }
        for (PositionalParamSpec p : spec.positionalParameters()) {
            if (!p.hidden()) {
                own.add(p);
            }
        }
        own.addAll(common);
        return own;
    }

    private static String summary(CommandSpec spec) {
        String[] header = spec.usageMessage().header();
        return header.length > 0 ? header[0] : "";
    }

    /** As help shows it: {@code --name VALUE}, {@code --name} for a flag, {@code VALUE} for a positional. */
    static String syntax(ArgSpec a) {
        if (a instanceof OptionSpec o) {
            String name = o.longestName();
            return o.arity().max() == 0 ? name : name + " " + o.paramLabel();
        }
        return a.paramLabel();
    }

    private static void appendOptions(StringBuilder s, List<? extends ArgSpec> args) {
        List<String> left = new ArrayList<>();
        for (ArgSpec a : args) {
            String l = syntax(a);
            if (a instanceof OptionSpec o && o.names().length > 1) {
                l = String.join(", ", o.names()) + l.substring(o.longestName().length());
            }
            left.add(l);
        }
        int width = Math.min(HELP_COLUMN_MAX, left.stream().mapToInt(String::length).max().orElse(0));
        for (int i = 0; i < args.size(); i++) {
            ArgSpec a = args.get(i);
            StringBuilder text = new StringBuilder(String.join("\n", a.description()));
            if (a.required()) {
                text.append(" (required)");
            } else if (a.defaultValue() != null && !(a instanceof OptionSpec o && o.arity().max() == 0)) {
                text.append(" (default: ").append(a.defaultValue()).append(')');
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
}
