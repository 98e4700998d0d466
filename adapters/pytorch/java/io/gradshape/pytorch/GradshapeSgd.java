package io.gradshape.pytorch;

import io.gradshape.Backend;
import io.gradshape.Backends;
import io.gradshape.DType;
import io.gradshape.Memory;
import io.gradshape.ScaledSgd;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.function.BiPredicate;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.Optimizer;
import org.bytedeco.pytorch.StringTensorDict;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * gradshape's scaled SGD ({@link ScaledSgd}: exactly {@code torch.optim.SGD}, each conv weight's
 * gradient multiplied by its scale G inside the step) bound zero-copy to a libtorch {@link Module}:
 * the optimizer updates the module's parameter storage in place and reads the gradients libtorch's
 * backward wrote, at the same addresses.
 *
 * <p>Gradients do not exist before the first backward, so {@link Builder#build()} allocates every
 * missing gradient up front (zeros, the parameter's shape) and the optimizer is ready before any
 * backward. Zero them with {@link #zeroGrad()}, which writes zeros in place. libtorch's own
 * {@code module.zero_grad()} frees them (set_to_none) and the next backward allocates new ones
 * elsewhere: {@link #step()} detects a moved gradient, copies its values into the bound one and puts
 * the bound one back as the parameter's gradient ({@link #rebinds()} counts these), so the binding
 * survives at the cost of one copy. A parameter whose gradient is missing at a step (no backward since
 * a set_to_none), or whose storage was replaced (e.g. {@code module.to(...)}), is an
 * {@link IllegalStateException} naming the parameter: its update would otherwise be lost silently.
 *
 * <p>Conv weights are recognised from their shape: 4-D {@code [Cout, Cin, kh, kw]} with
 * {@code kh, kw > 1} take a scale G ({@link #setScale}); every other parameter is stepped unscaled.
 * Weight decay applies to the parameters with more than one dimension and not to biases and other 1-D
 * parameters (the ImageNet recipe), unless {@link Builder#decay} says otherwise. The learning rate is
 * {@link #setLearningRate}, or follows a libtorch optimizer's first parameter group at every step
 * ({@link Builder#learningRateFrom}), so libtorch's schedulers ({@code StepLR}, ...) drive it.
 *
 * <p>Parameters must be float32, dense, contiguous and on the CPU (the presets' libtorch is CPU-only).
 * Not thread-safe: the training thread steps it. Close it when done (its momentum buffers are native).
 */
public final class GradshapeSgd implements AutoCloseable {

    /** One bound parameter: the tensors kept alive, their addresses, and its kernel if scaled. */
    private record Bound(String name, Tensor param, Tensor grad, long weights, long grads, long numel,
                         ScaledSgd.Kernel kernel, boolean decay) {}

    private final ScaledSgd sgd;
    private final List<Bound> bound;
    private final Optimizer lrSource;
    private long rebinds;
    private boolean closed;

    private GradshapeSgd(ScaledSgd sgd, List<Bound> bound, Optimizer lrSource) {
        this.sgd = sgd;
        this.bound = bound;
        this.lrSource = lrSource;
    }

    /** Starts an optimizer over every parameter of {@code module} that requires a gradient. */
    public static Builder builder(Module module) {
        return new Builder(module);
    }

    /** Options of a {@link GradshapeSgd}; the hyperparameters mean what they mean in {@code torch.optim.SGD}. */
    public static final class Builder {
        private final Module module;
        private Backend backend;
        private double lr = 1e-3;
        private double momentum;
        private double dampening;
        private double weightDecay;
        private boolean nesterov;
        private BiPredicate<String, Tensor> decay = (name, p) -> p.dim() > 1;
        private Optimizer lrSource;

        private Builder(Module module) {
            this.module = Objects.requireNonNull(module, "module");
        }

        public Builder lr(double lr) {
            this.lr = lr;
            return this;
        }

        public Builder momentum(double momentum) {
            this.momentum = momentum;
            return this;
        }

        public Builder dampening(double dampening) {
            this.dampening = dampening;
            return this;
        }

        public Builder weightDecay(double weightDecay) {
            this.weightDecay = weightDecay;
            return this;
        }

        public Builder nesterov(boolean nesterov) {
            this.nesterov = nesterov;
            return this;
        }

        /**
         * Which parameters get weight decay, by name (as {@code module.named_parameters()} has it, e.g.
         * {@code "conv1.weight"}) and tensor. Default: those with more than one dimension.
         */
        public Builder decay(BiPredicate<String, Tensor> decay) {
            this.decay = Objects.requireNonNull(decay, "decay");
            return this;
        }

        /**
         * Reads the learning rate of {@code optimizer}'s first parameter group before every step, so that
         * a libtorch scheduler stepping that optimizer sets gradshape's rate. The optimizer itself is
         * never stepped; it must outlive this one.
         */
        public Builder learningRateFrom(Optimizer optimizer) {
            this.lrSource = Objects.requireNonNull(optimizer, "optimizer");
            return this;
        }

        /** The gradshape backend (default {@link Backends#cpu()}; libtorch tensors here are host memory). */
        public Builder backend(Backend backend) {
            this.backend = Objects.requireNonNull(backend, "backend");
            return this;
        }

        /**
         * Validates every parameter, allocates the gradients that do not exist yet and binds the optimizer.
         *
         * @throws IllegalArgumentException naming the parameter that is not float32, dense, contiguous
         *                                  and on the CPU, or a hyperparameter out of range
         */
        public GradshapeSgd build() {
            checkFinite("lr", lr);
            checkFinite("momentum", momentum);
            checkFinite("dampening", dampening);
            checkFinite("weightDecay", weightDecay);
            Backend be = backend != null ? backend : Backends.cpu();
            if (be.kind() != Backend.Kind.CPU) {
                throw new IllegalArgumentException("backend: the presets' libtorch keeps tensors in host memory; expected the CPU backend, got "
                        + be.description());
            }
            List<Bound> list = new ArrayList<>();
            StringTensorDict named = Scopes.keep(module.named_parameters(true));
            try {
                for (long i = 0; i < named.size(); i++) {
                    String name = named.get(i).key().getString();
                    // value() and grad() are references into the dict and the autograd metadata, which
                    // zero_grad(set_to_none) and the dict's end free: hold owned copies (shared storage).
                    Tensor p = Scopes.keep(new Tensor(named.get(i).value()));
                    if (!p.requires_grad()) {
                        p.close();
                        continue;
                    }
                    checkParameter(name, p);
                    if (!p.grad().defined()) {
                        try (Tensor zeros = torch.zeros_like(p)) {
                            p.mutable_grad().put(zeros);
                        }
                    }
                    Tensor g = Scopes.keep(new Tensor(p.grad()));
                    checkGradient(name, p, g);
                    long[] shape = p.sizes().vec().get();
                    ScaledSgd.Kernel kernel = shape.length == 4 && shape[2] > 1 && shape[3] > 1
                            ? ScaledSgd.Kernel.ofWeightShape(ScaledSgd.Layout.OIHW, shape) : null;
                    list.add(new Bound(name, p, g, address(p), address(g), p.numel(), kernel, decay.test(name, p)));
                }
            } catch (RuntimeException e) {
                list.forEach(b -> { b.param.close(); b.grad.close(); });
                throw e;
            } finally {
                named.close();
            }
            if (list.isEmpty()) {
                throw new IllegalArgumentException("module: no parameter requires a gradient");
            }
            ScaledSgd.Builder b = ScaledSgd.builder(be).lr((float) lr).momentum((float) momentum)
                    .dampening((float) dampening).weightDecay((float) weightDecay).nesterov(nesterov);
            for (Bound p : list) {
                ScaledSgd.Parameter parameter = ScaledSgd.Parameter.of(
                        Memory.host(p.weights, DType.FLOAT32, p.numel, p.param),
                        Memory.host(p.grads, DType.FLOAT32, p.numel, p.grad)).withWeightDecay(p.decay);
                b.addParameter(p.kernel == null ? parameter : parameter.withKernel(p.kernel));
            }
            ScaledSgd sgd;
            try {
                sgd = b.build();
            } catch (RuntimeException e) {
                list.forEach(x -> { x.param.close(); x.grad.close(); });
                throw e;
            }
            return new GradshapeSgd(sgd, Collections.unmodifiableList(list), lrSource);
        }

        private static void checkFinite(String name, double v) {
            if (!Double.isFinite(v) || v < 0 && !name.equals("dampening")) {
                throw new IllegalArgumentException(name + ": expected a finite value" + (name.equals("dampening") ? "" : " >= 0")
                        + ", got " + v);
            }
        }
    }

    /**
     * One SGD step over every bound parameter, after checking that each still has its bound storage and
     * gradient (see the class comment for what happens when libtorch moved a gradient).
     */
    public void step() {
        checkOpen();
        for (Bound b : bound) {
            // The held tensor shares its TensorImpl with the module's parameter: Module.to and set_data
            // swap the storage of that impl, which shows here.
            if (address(b.param) != b.weights) {
                throw new IllegalStateException("parameter " + b.name + ": its storage moved (Module.to, set_data) after"
                        + " GradshapeSgd was built; build the optimizer again");
            }
        }
        for (Bound b : bound) {
            try (Tensor g = b.param.grad()) {
                if (!g.defined()) {
                    throw new IllegalStateException("parameter " + b.name + ": no gradient (module.zero_grad() freed it and no backward"
                            + " has run since); zero gradients with GradshapeSgd.zeroGrad() instead");
                }
                if (address(g) != b.grads) {
                    checkGradient(b.name, b.param, g);
                    b.grad.copy_(g);
                    b.param.mutable_grad().put(b.grad);
                    rebinds++;
                }
            }
        }
        if (lrSource != null) {
            sgd.setLearningRate((float) lrSource.param_groups().get(0).options().get_lr());
        }
        sgd.step();
    }

    /**
     * Zeroes every bound gradient in place (not set_to_none: the addresses stay bound). A plain memset
     * of each gradient: no libtorch dispatch and no thread team for a few hundred kilobytes.
     */
    public void zeroGrad() {
        checkOpen();
        for (Bound b : bound) {
            try (Tensor g = b.param.grad()) {
                if (!g.defined() || address(g) != b.grads) {
                    // A gradient libtorch freed or re-created elsewhere: bind ours again.
                    b.param.mutable_grad().put(b.grad);
                    rebinds++;
                }
            }
            try (Pointer p = b.grad.data_ptr()) {
                Pointer.memset(p, 0, 4 * b.numel);
            }
        }
    }

    /** Sets the learning rate of the following steps (ignored when it follows a libtorch optimizer). */
    public void setLearningRate(double lr) {
        checkOpen();
        sgd.setLearningRate((float) lr);
    }

    public double learningRate() {
        return sgd.learningRate();
    }

    /** Sets the scale G ({@code kh * kw}, row-major) of the conv weight named {@code parameter}. */
    public void setScale(String parameter, float[] g) {
        checkOpen();
        sgd.setScale(indexOf(parameter), g);
    }

    /** The current scale G of the conv weight named {@code parameter} (all ones until set). */
    public float[] scale(String parameter) {
        checkOpen();
        return sgd.scale(indexOf(parameter));
    }

    /** Names of the bound parameters, in {@code named_parameters()} order. */
    public List<String> parameters() {
        return bound.stream().map(Bound::name).toList();
    }

    /** Names of the conv weights that take a scale G (4-D with kh, kw > 1). */
    public List<String> scaledParameters() {
        return bound.stream().filter(b -> b.kernel != null).map(Bound::name).toList();
    }

    /** Whether weight decay applies to {@code parameter}. */
    public boolean decays(String parameter) {
        return bound.get(indexOf(parameter)).decay;
    }

    /** Native address of the weights gradshape updates for {@code parameter}: the module's own storage. */
    public long weightsAddress(String parameter) {
        return bound.get(indexOf(parameter)).weights;
    }

    /** Native address of the gradient gradshape reads for {@code parameter}: the tensor backward writes. */
    public long gradientAddress(String parameter) {
        return bound.get(indexOf(parameter)).grads;
    }

    /** How many times a gradient that libtorch had moved was copied back into the bound one. */
    public long rebinds() {
        return rebinds;
    }

    public long stepCount() {
        return sgd.stepCount();
    }

    /** The core optimizer, for what this class does not forward (momentum buffers, element count). */
    public ScaledSgd core() {
        checkOpen();
        return sgd;
    }

    private int indexOf(String parameter) {
        Objects.requireNonNull(parameter, "parameter");
        for (int i = 0; i < bound.size(); i++) {
            if (bound.get(i).name.equals(parameter)) {
                return i;
            }
        }
        throw new IllegalArgumentException("parameter: no bound parameter named \"" + parameter + "\" (have " + parameters() + ")");
    }

    static long address(Tensor t) {
        try (Pointer p = t.data_ptr()) {
            return p.address();
        }
    }

    private static void checkParameter(String name, Tensor p) {
        if (p.scalar_type().value != torch.ScalarType.Float.value) {
            throw new IllegalArgumentException("parameter " + name + ": expected float32, got " + p.scalar_type().intern());
        }
        if (!p.is_cpu() || p.is_sparse()) {
            throw new IllegalArgumentException("parameter " + name + ": expected a dense CPU tensor, got " + p.device().str().getString()
                    + (p.is_sparse() ? " (sparse)" : ""));
        }
        if (!p.is_contiguous()) {
            throw new IllegalArgumentException("parameter " + name + ": expected a contiguous tensor, got strides "
                    + Arrays.toString(p.strides().vec().get()));
        }
        if (p.numel() < 1) {
            throw new IllegalArgumentException("parameter " + name + ": has no elements");
        }
    }

    private static void checkGradient(String name, Tensor p, Tensor g) {
        if (g.scalar_type().value != torch.ScalarType.Float.value || !g.is_cpu() || g.is_sparse() || !g.is_contiguous()
                || g.numel() != p.numel()) {
            throw new IllegalArgumentException("gradient of " + name + ": expected a dense contiguous float32 CPU tensor of "
                    + p.numel() + " elements like the parameter, got " + g.scalar_type().intern() + " with " + g.numel() + " elements");
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("GradshapeSgd is closed");
        }
    }

    /** Frees the momentum buffers and the references to the module's tensors; idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        sgd.close();
        for (Bound b : bound) {
            b.param.close();
            b.grad.close();
        }
    }
}
