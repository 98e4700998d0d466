package io.gradshape.train;

import io.gradshape.Gradshape;
import io.gradshape.SgsSchedule;
import io.gradshape.cli.AddOnCommand;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code gradshape train}: the main job. Trains the reference CNN ({@link Network}) on Fashion-MNIST
 * with each arm (baseline, sgs, pgt, sgs+pgt), same seed and data order per arm, and prints a table
 * per arm; {@code --out DIR} writes {@code summary.json} and {@code curves.png}.
 */
@Command(name = "train", mixinStandardHelpOptions = true, versionProvider = TrainCommand.Version.class,
        header = "the main job: train a CNN on Fashion-MNIST with and without SGS and PGT, and compare the arms",
        description = {"Train a small VGG-style CNN on Fashion-MNIST with and without SGS and PGT, and compare.",
            "Default: a short run (4000 training images, 1000 test images, 3 epochs, SGS refreshed at epoch 1); --full: 60k/10k, 15 epochs."},
        exitCodeOnInvalidInput = 2, exitCodeOnExecutionException = 1)
public final class TrainCommand implements AddOnCommand {
    static final String[] ARMS = {"baseline", "sgs", "pgt", "sgs+pgt"};

    @Spec
    CommandSpec spec;

    @Option(names = "--data", paramLabel = "DIR", description = "Fashion-MNIST directory (the four .gz files); "
            + "'builtin' for the shipped slice. Default: " + "/usr/share/datasets/fashion-mnist, else the slice.")
    String data;

    @Option(names = "--out", paramLabel = "DIR", description = "write summary.json and curves.png here")
    Path out;

    @Option(names = "--trainer", paramLabel = "NAME", description = "djl, pytorch or dl4j (default: djl, the fastest measured here)")
    String trainer = "djl";

    @Option(names = "--seeds", paramLabel = "N", description = "seeds per arm (mean and spread reported; default 1)")
    int seeds = 1;

    @Option(names = "--seed", paramLabel = "S", description = "first seed (default 1)")
    long seed = 1;

    @Option(names = "--full", description = "the full 60k/10k split for 15 epochs")
    boolean full;

    @Option(names = "--epochs", paramLabel = "E", description = "epochs (default 3; --full: 15)")
    Integer epochs;

    @Option(names = "--train-size", paramLabel = "N", description = "training images used (default 4000; --full: all)")
    Integer trainSize;

    @Option(names = "--test-size", paramLabel = "N", description = "test images evaluated (default 1000; --full: all)")
    Integer testSize;

    @Option(names = "--batch", paramLabel = "B", description = "batch size (default 64)")
    int batch = 64;

    // 0.02, not 0.05: on this network without batch norm, the PGT arms (alpha 0.25) diverged at 0.05
    // with momentum 0.9 (logits NaN in epoch 3 with DJL, chance accuracy with one thread), while every
    // arm trains at 0.02 (measured 2026-12-01, bench/RESULTS.md). PGT's gradient does not vanish as the
    // true class wins, so the logits keep growing at a rate set by the learning rate.
    @Option(names = "--lr", description = "learning rate (default 0.02)")
    float lr = 0.02f;

    @Option(names = "--momentum", description = "SGD momentum (default 0.9)")
    float momentum = 0.9f;

    @Option(names = "--weight-decay", description = "L2 weight decay (default 0)")
    float weightDecay = 0f;

    @Option(names = "--alpha", description = "PowerGrad alpha of the pgt arms (default 0.25)")
    float alpha = 0.25f;

    @Option(names = "--sgs-every", paramLabel = "E", description = "SGS refresh period in epochs (default 5)")
    int sgsEvery = 5;

    @Option(names = "--sgs-batches", paramLabel = "B", description = "batches per SGS refresh (default 2)")
    int sgsBatches = 2;

    @Option(names = "--sgs-warmup", paramLabel = "W", description = "epoch of the first SGS refresh (default 1)")
    int sgsWarmup = 1;

    @Option(names = "--arms", split = ",", paramLabel = "ARM", description = "arms to run (default: baseline,sgs,pgt,sgs+pgt)")
    List<String> arms = List.of(ARMS);

    @Option(names = "--threads", paramLabel = "N", description = "CPU threads for the trainer and gradshape (default: all)")
    int threads = Runtime.getRuntime().availableProcessors();

    /** picocli's --version. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"gradshape " + Gradshape.version()};
        }
    }

    /** Entry point when the core command line does not (yet) find this command through ServiceLoader. */
    public static void main(String[] args) {
        System.exit(new CommandLine(new TrainCommand()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        validate();
        Map<String, ArmRunner> runners = runners();
        ArmRunner runner = runners.get(trainer);
        if (runner == null) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--trainer: '" + trainer
                    + "' is not available; on the classpath: " + String.join(", ", runners.keySet()));
        }
        FashionMnist mnist = FashionMnistLoader.load(data);
        int e = epochs != null ? epochs : full ? 15 : 3;
        int train = trainSize != null ? trainSize : full ? mnist.trainCount() : 4000;
        int test = testSize != null ? testSize : full ? mnist.testCount() : 1000;
        train = Math.min(train, mnist.trainCount());
        test = Math.min(test, mnist.testCount());
        SgsSchedule schedule = new SgsSchedule(sgsEvery, sgsBatches, sgsWarmup);
        String setting = String.format("%s, %s: %d train / %d test images, %d epochs, batch %d, lr %s, momentum %s, "
                + "weight decay %s, SGS every %d epochs from epoch %d (%d batches), PGT alpha %s, %d seed(s) from %d, %d threads",
                trainer, mnist.source(), train, test, e, batch, lr, momentum, weightDecay, sgsEvery, sgsWarmup, sgsBatches,
                alpha, seeds, seed, threads);
        int refreshes = 0;
        for (int i = 0; i < e; i++) {
            refreshes += schedule.refreshAt(i) ? 1 : 0;
        }
        stdout.println("gradshape " + Gradshape.version() + " train: " + setting);
        if (refreshes == 0) {
            stdout.println("note: no SGS refresh falls inside " + e + " epochs, so the sgs arms run with G = 1");
        }
        Map<String, List<ArmResult>> results = new LinkedHashMap<>();
        TrainProgress progress = new TrainProgress(err, System.console() != null);
        stdout.flush();
        for (String arm : arms) {
            for (int k = 0; k < seeds; k++) {
                ArmSpec a = new ArmSpec(arm, arm.startsWith("sgs"), arm.endsWith("pgt") ? alpha : Float.NaN,
                        !arm.equals("baseline"), seed + k, e, train, test, batch, lr, momentum, weightDecay, schedule, threads);
                progress.begin(arm + (seeds > 1 ? " seed " + (seed + k) : ""), e);
                ArmResult r = runner.run(a, mnist, progress);
                progress.end(r);
                results.computeIfAbsent(arm, x -> new ArrayList<>()).add(r);
            }
        }
        TrainReport report = new TrainReport(setting, results);
        stdout.print(report.table());
        if (out != null) {
            Files.createDirectories(out);
            Files.writeString(out.resolve("summary.json"), report.json());
            TrainChart.write(results, setting, out.resolve("curves.png"));
            stdout.println("wrote " + out.resolve("summary.json") + " and " + out.resolve("curves.png"));
        }
        stdout.flush();
        return 0;
    }

    private void validate() {
        CommandLine cl = spec.commandLine();
        if (seeds < 1) {
            throw new CommandLine.ParameterException(cl, "--seeds: must be >= 1, got " + seeds);
        }
        if (batch < 1) {
            throw new CommandLine.ParameterException(cl, "--batch: must be >= 1, got " + batch);
        }
        if (threads < 1) {
            throw new CommandLine.ParameterException(cl, "--threads: must be >= 1, got " + threads);
        }
        if ((epochs != null && epochs < 1) || (trainSize != null && trainSize < 1) || (testSize != null && testSize < 1)) {
            throw new CommandLine.ParameterException(cl, "--epochs, --train-size, --test-size: must be >= 1");
        }
        if (!(lr > 0 && Float.isFinite(lr)) || !(momentum >= 0 && momentum < 1) || !(weightDecay >= 0 && Float.isFinite(weightDecay))
                || !(alpha > 0 && Float.isFinite(alpha))) {
            throw new CommandLine.ParameterException(cl, "--lr > 0, 0 <= --momentum < 1, --weight-decay >= 0, --alpha > 0 (finite)");
        }
        if (sgsEvery < 1 || sgsBatches < 1 || sgsWarmup < 0) {
            throw new CommandLine.ParameterException(cl, "--sgs-every >= 1, --sgs-batches >= 1, --sgs-warmup >= 0");
        }
        for (String a : arms) {
            if (!List.of(ARMS).contains(a)) {
                throw new CommandLine.ParameterException(cl, "--arms: unknown arm '" + a + "' (arms: " + String.join(", ", ARMS) + ")");
            }
        }
    }

    /**
     * The runners on the classpath, by trainer name. The services file lists every runner the project
     * has; a runner whose module is not on the classpath is skipped, not fatal.
     */
    static Map<String, ArmRunner> runners() {
        Map<String, ArmRunner> found = new LinkedHashMap<>();
        Iterator<ArmRunner> it = ServiceLoader.load(ArmRunner.class).iterator();
        while (true) {
            try {
                if (!it.hasNext()) {
                    break;
                }
                ArmRunner r = it.next();
                found.putIfAbsent(r.trainer(), r);
            } catch (ServiceConfigurationError missing) {
                // a listed runner that is not on the classpath: ServiceLoader moves on to the next one
            }
        }
        return found;
    }
}
