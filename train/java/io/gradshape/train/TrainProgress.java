package io.gradshape.train;

import java.io.PrintWriter;

/**
 * A progress bar per arm on stderr: redrawn in place on a console (at most every 100 ms), plain lines
 * at most every 5 s otherwise (logs stay short). One finished line per epoch.
 */
final class TrainProgress implements ArmRunner.StepListener {
    private static final int WIDTH = 30;
    private final PrintWriter err;
    private final boolean console;
    private String arm = "";
    private int epochs;
    private long last;
    private long start;

    TrainProgress(PrintWriter err, boolean console) {
        this.err = err;
        this.console = console;
    }

    void begin(String arm, int epochs) {
        this.arm = arm;
        this.epochs = epochs;
        this.start = System.nanoTime();
        this.last = 0;
    }

    @Override
    public void step(int epoch, long stepInEpoch, long stepsPerEpoch, double loss) {
        long now = System.nanoTime();
        if (now - last < (console ? 100_000_000L : 5_000_000_000L) && stepInEpoch != stepsPerEpoch) {
            return;
        }
        last = now;
        int filled = (int) (WIDTH * stepInEpoch / stepsPerEpoch);
        String line = String.format("%-8s epoch %d/%d [%s%s] %d/%d loss %.4f", arm, epoch + 1, epochs,
                "#".repeat(filled), ".".repeat(WIDTH - filled), stepInEpoch, stepsPerEpoch, loss);
        if (console) {
            err.print("\r" + line);
        } else {
            err.println(line);
        }
        err.flush();
    }

    @Override
    public void epoch(int epoch, double trainLoss, double testAccuracy) {
        String line = String.format("%-8s epoch %d/%d done: train loss %.4f, test accuracy %.2f%% (%.0f s)", arm, epoch, epochs,
                trainLoss, 100 * testAccuracy, (System.nanoTime() - start) / 1e9);
        err.println(console ? "\r" + line + " ".repeat(20) : line);
        err.flush();
    }

    void end(ArmResult r) {
        err.flush();
    }
}
