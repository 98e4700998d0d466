package io.gradshape.bench;

import java.util.ArrayList;
import java.util.List;

/**
 * The parameter tensors of torchvision's {@code resnet50()}, in {@code model.parameters()} order: 161
 * tensors, 25,557,032 parameters. Conv weights are OIHW {@code [Cout, Cin, kh, kw]}; the 7x7 stem and the
 * sixteen 3x3 convs carry a spatial gradient scale G (SPEC.md section 1: kernels with both sides odd
 * and > 1); BN weights / biases and the fc bias take no weight decay, as trainers set it up.
 */
public final class ScaledSgdResNet50 {
    /** One parameter tensor. {@code scaled}: it takes a kh x kw scale. */
    public record Tensor(String name, long[] shape, boolean scaled, boolean weightDecay) {
        public long length() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }

        public int kernelHeight() {
            return (int) shape[2];
        }

        public int kernelWidth() {
            return (int) shape[3];
        }
    }

    public static final int TENSORS = 161;
    public static final long PARAMETERS = 25_557_032L;

    private ScaledSgdResNet50() {}

    public static List<Tensor> parameters() {
        List<Tensor> list = new ArrayList<>();
        conv(list, "conv1", 64, 3, 7);
        bn(list, "bn1", 64);
        int inplanes = 64;
        int[] planes = {64, 128, 256, 512};
        int[] blocks = {3, 4, 6, 3};
        for (int layer = 0; layer < 4; layer++) {
            int p = planes[layer];
            for (int b = 0; b < blocks[layer]; b++) {
                String prefix = "layer" + (layer + 1) + "." + b + ".";
                conv(list, prefix + "conv1", p, inplanes, 1);
                bn(list, prefix + "bn1", p);
                conv(list, prefix + "conv2", p, p, 3);
                bn(list, prefix + "bn2", p);
                conv(list, prefix + "conv3", 4 * p, p, 1);
                bn(list, prefix + "bn3", 4 * p);
                if (b == 0) {
                    conv(list, prefix + "downsample.0", 4 * p, inplanes, 1);
                    bn(list, prefix + "downsample.1", 4 * p);
                }
                inplanes = 4 * p;
            }
        }
        list.add(new Tensor("fc.weight", new long[] {1000, 2048}, false, true));
        list.add(new Tensor("fc.bias", new long[] {1000}, false, false));
        long total = list.stream().mapToLong(Tensor::length).sum();
        if (list.size() != TENSORS || total != PARAMETERS) {
            throw new IllegalStateException("ResNet-50 shape list: " + list.size() + " tensors, " + total + " parameters");
        }
        return list;
    }

    private static void conv(List<Tensor> list, String name, int cout, int cin, int k) {
        list.add(new Tensor(name + ".weight", new long[] {cout, cin, k, k}, k > 1, true));
    }

    private static void bn(List<Tensor> list, String name, int channels) {
        list.add(new Tensor(name + ".weight", new long[] {channels}, false, false));
        list.add(new Tensor(name + ".bias", new long[] {channels}, false, false));
    }
}
