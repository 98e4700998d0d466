package io.gradshape.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * A test-only add-on command, registered in test/META-INF/services: {@link Main} must find it with
 * ServiceLoader, list it, parse its options and report its errors as it does the core's own.
 */
@Command(name = "echo-addon", header = "an add-on found through ServiceLoader (tests only)",
        description = "Prints its words; --fail makes it fail with a usage or a runtime error.")
public final class EchoAddOn implements AddOnCommand {
    @Spec
    CommandSpec spec;

    @Mixin
    CommandOptions common;

    @Option(names = "--times", paramLabel = "N", defaultValue = "1", converter = OptionValues.Int.class,
            description = "how often to print the words")
    int times;

    @Option(names = "--fail", paramLabel = "usage|runtime", description = "fail on purpose")
    String fail;

    @Parameters(paramLabel = "WORD", arity = "0..*", description = "words to print")
    java.util.List<String> words = new java.util.ArrayList<>();

    private Terminal terminal;

    public EchoAddOn() {}

    @Override
    public void setTerminal(Terminal terminal) {
        this.terminal = terminal;
    }

    @Override
    public Integer call() {
        if ("usage".equals(fail)) {
            throw new ParameterException(spec.commandLine(), "--fail usage was asked for");
        }
        if ("runtime".equals(fail)) {
            throw new IllegalStateException("the add-on failed as asked");
        }
        for (int i = 0; i < times; i++) {
            terminal.out().println(String.join(" ", words));
        }
        spec.commandLine().getErr().println("stderr through picocli");
        return common.verbose() ? 7 : Main.EXIT_OK;
    }
}
