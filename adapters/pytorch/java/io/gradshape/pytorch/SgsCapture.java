package io.gradshape.pytorch;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.DType;
import io.gradshape.Memory;
import io.gradshape.SgsRefresh;
import io.gradshape.SgsSchedule;
import io.gradshape.SpatialDependence;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.pytorch.Conv2dImpl;
import org.bytedeco.pytorch.DetailConv2dOptions;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.StringSharedModuleDict;
import org.bytedeco.pytorch.Tensor;

/**
 * Spatial gradient scaling for a libtorch {@link Module}: captures the input of every 2-D conv with a
 * kernel of at least 3 x 3 (zero padding read from the conv's own options), merges the captured batches
 * exactly ({@link SgsRefresh}), and sets each conv weight's scale G in a {@link GradshapeSgd}, on the
 * papers' schedule ({@link SgsSchedule}: G = 1 until the first refresh).
 *
 * <p>libtorch has no forward hooks callable from Java, so the model's forward passes each conv's input
 * through {@link #input(Conv2dImpl, Tensor)} — it returns its argument unchanged and costs nothing
 * outside a refresh:
 *
 * <pre>{@code
 * x = relu(conv1.forward(sgs.input(conv1, x)));
 * }</pre>
 *
 * and the training loop calls {@link #beginEpoch} at the start of each epoch, which, when a refresh is
 * due, runs the forward on {@link SgsSchedule#batches()} batches in eval mode without autograd,
 * computes G per conv and hands it to the optimizer. A conv whose new G is not finite keeps its
 * previous G; its {@link SgsRefresh.Update} says so and a warning is logged.
 *
 * <p>Convs that cannot be measured exactly are left at G = 1 and listed with the reason in
 * {@link #unscaled()}: an even kernel, dilation other than 1, a padding mode other than zeros, or
 * 'same'/'valid' padding given by name.
 */
public final class SgsCapture implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(SgsCapture.class.getName());

    private final Module module;
    private final GradshapeSgd sgd;
    private final SgsRefresh refresh;
    private final List<Conv2dImpl> convs = new ArrayList<>();
    private final List<String> weightNames = new ArrayList<>();
    private final Map<String, String> unscaled = new LinkedHashMap<>();
    private List<SgsRefresh.Update> lastUpdates = List.of();
    private boolean capturing;
    private boolean closed;

    /** Finds the convs of {@code module} scaled by {@code sgd}, on {@code schedule}, reference dependence options. */
    public SgsCapture(Module module, GradshapeSgd sgd, SgsSchedule schedule) {
        this(module, sgd, schedule, SpatialDependence.Options.defaults(), Backends.cpu());
    }

    /**
     * @param base dependence options (bins, range, ...); kernel and padding come from each conv
     */
    public SgsCapture(Module module, GradshapeSgd sgd, SgsSchedule schedule, SpatialDependence.Options base, Backend backend) {
        this.module = Objects.requireNonNull(module, "module");
        this.sgd = Objects.requireNonNull(sgd, "sgd");
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(base, "base");
        Objects.requireNonNull(backend, "backend");
        List<String> scaled = sgd.scaledParameters();
        List<SgsRefresh.Conv> list = new ArrayList<>();
        try (StringSharedModuleDict modules = module.named_modules()) {
            for (long i = 0; i < modules.size(); i++) {
                BytePointer key = modules.get(i).key();
                String name = key == null ? "" : key.getString();
                Conv2dImpl conv = modules.get(i).value().asConv2d();
                if (conv == null) {
                    continue;
                }
                String weight = name.isEmpty() ? "weight" : name + ".weight";
                if (!scaled.contains(weight)) {
                    continue; // 1 x 1 or frozen: GradshapeSgd does not scale it
                }
                DetailConv2dOptions o = conv.options();
                long kh = o.kernel_size().get(0), kw = o.kernel_size().get(1);
                String reason = null;
                long ph = 0, pw = 0;
                if (kh % 2 == 0 || kw % 2 == 0) {
                    reason = "even kernel " + kh + " x " + kw + " (the dependence needs a centre)";
                } else if (o.dilation().get(0) != 1 || o.dilation().get(1) != 1) {
                    reason = "dilation " + o.dilation().get(0) + " x " + o.dilation().get(1);
                } else if (!zeroPaddingMode(o)) {
                    reason = "padding mode other than zeros";
                } else {
                    try {
                        LongPointer pad = o.padding().get0();
                        ph = pad.get(0);
                        pw = pad.get(1);
                    } catch (RuntimeException e) {
                        reason = "padding given as 'same' or 'valid' rather than as sizes";
                    }
                }
                if (reason != null) {
                    unscaled.put(name, reason);
                    continue;
                }
                list.add(new SgsRefresh.Conv(name, (int) kh, (int) kw, (int) ph, (int) pw));
                convs.add(Scopes.keep(conv));
                weightNames.add(weight);
            }
        }
        if (list.isEmpty()) {
            throw new IllegalArgumentException("module: no conv to scale (scaled weights " + scaled + ", left out " + unscaled + ")");
        }
        this.refresh = new SgsRefresh(backend, list, schedule, base);
    }

    private static boolean zeroPaddingMode(DetailConv2dOptions o) {
        try {
            o.padding_mode().get0();
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * The input of {@code conv}, returned unchanged; during a refresh, a host copy of it is kept for
     * the dependence. A conv that is not measured (see {@link #unscaled()}) passes through.
     */
    public Tensor input(Conv2dImpl conv, Tensor x) {
        if (!capturing) {
            return x;
        }
        Objects.requireNonNull(conv, "conv");
        Objects.requireNonNull(x, "x");
        int index = -1;
        for (int i = 0; i < convs.size(); i++) {
            if (convs.get(i).address() == conv.address()) {
                index = i;
                break;
            }
        }
        if (index < 0) {
            return x;
        }
        if (x.dim() != 4) {
            throw new IllegalArgumentException("x: expected the NCHW input of " + refresh.convs().get(index).name() + ", got "
                    + x.dim() + " dimensions");
        }
        long[] s = {x.size(0), x.size(1), x.size(2), x.size(3)};
        for (long v : s) {
            if (v > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("x: dimension " + v + " of " + refresh.convs().get(index).name() + "'s input too large");
            }
        }
        try (Tensor c = x.contiguous()) {
            refresh.capture(index, Memory.host(GradshapeSgd.address(c), DType.FLOAT32, c.numel(), c),
                    (int) s[0], (int) s[1], (int) s[2], (int) s[3]);
        }
        return x;
    }

    /**
     * At the start of epoch {@code epoch} (0-based): when the schedule says so, refreshes G from the
     * first {@link SgsSchedule#batches()} image batches of {@code batches}, each run through
     * {@code forward} (the model's forward, which calls {@link #input}); otherwise does nothing.
     *
     * @return the updates of this refresh, or an empty list when none was due
     */
    public List<SgsRefresh.Update> beginEpoch(int epoch, Iterable<Tensor> batches, Function<Tensor, Tensor> forward) {
        checkOpen();
        if (!refresh.dueAt(epoch)) {
            return List.of();
        }
        return refreshNow(batches, forward);
    }

    /** Refreshes G now (whatever the schedule), as {@link #beginEpoch} does when due. */
    public List<SgsRefresh.Update> refreshNow(Iterable<Tensor> batches, Function<Tensor, Tensor> forward) {
        checkOpen();
        Objects.requireNonNull(batches, "batches");
        Objects.requireNonNull(forward, "forward");
        boolean training = module.is_training();
        int wanted = refresh.schedule().batches();
        int seen = 0;
        module.eval();
        capturing = true;
        try (NoGradGuard guard = new NoGradGuard()) {
            Iterator<Tensor> it = batches.iterator();
            while (seen < wanted && it.hasNext()) {
                Tensor out = forward.apply(it.next());
                if (out != null) {
                    out.close();
                }
                seen++;
            }
        } finally {
            capturing = false;
            module.train(training);
        }
        if (seen < wanted) {
            throw new IllegalArgumentException("batches: the schedule measures " + wanted + " batches, got " + seen);
        }
        for (int i = 0; i < convs.size(); i++) {
            if (refresh.captured(i) == 0) {
                throw new IllegalStateException("conv " + refresh.convs().get(i).name() + ": no input captured; does the forward pass"
                        + " its input through SgsCapture.input(conv, x)?");
            }
        }
        List<SgsRefresh.Update> updates = refresh.refresh();
        for (int i = 0; i < updates.size(); i++) {
            SgsRefresh.Update u = updates.get(i);
            sgd.setScale(weightNames.get(i), u.g());
            if (u.keptPrevious()) {
                LOG.log(System.Logger.Level.WARNING, u.reason());
            }
        }
        lastUpdates = List.copyOf(updates);
        return lastUpdates;
    }

    /** The measured convs' names, in forward order of registration. */
    public List<String> convs() {
        return refresh.convs().stream().map(SgsRefresh.Conv::name).toList();
    }

    /** The current G of conv {@code name} (all ones before the first refresh). */
    public float[] g(String name) {
        List<String> names = convs();
        int i = names.indexOf(Objects.requireNonNull(name, "name"));
        if (i < 0) {
            throw new IllegalArgumentException("name: no measured conv \"" + name + "\" (have " + names + ")");
        }
        return refresh.g(i);
    }

    /** The kernel and padding of each measured conv. */
    public List<SgsRefresh.Conv> convShapes() {
        return refresh.convs();
    }

    /** Scaled convs left at G = 1, with the reason. */
    public Map<String, String> unscaled() {
        return Collections.unmodifiableMap(unscaled);
    }

    /** The updates of the last refresh (empty before the first). */
    public List<SgsRefresh.Update> lastUpdates() {
        return lastUpdates;
    }

    public int refreshes() {
        return refresh.refreshes();
    }

    public SgsSchedule schedule() {
        return refresh.schedule();
    }

    /** Time spent capturing and computing G, in nanoseconds (the forward passes of a refresh excluded). */
    public long nanosSpent() {
        return refresh.nanosSpent();
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("SgsCapture is closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        refresh.close();
        convs.forEach(Conv2dImpl::close);
    }
}
