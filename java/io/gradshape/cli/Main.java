package io.gradshape.cli;

import io.gradshape.Gradshape;

/** The gradshape command line: {@code java -jar target/gradshape.jar <command> [options]}. */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        String command = args.length == 0 ? "info" : args[0];
        switch (command) {
            case "info" -> System.out.print(Gradshape.info());
            case "--help", "-h", "help" -> System.out.println("usage: gradshape info");
            default -> {
                System.err.println("gradshape: unknown command '" + command + "' (try --help)");
                System.exit(2);
            }
        }
    }
}
