package io.gradshape.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** The data the demo makes for itself: feature maps with spatial structure, a model's parameter shapes, logits. */
final class DemoData {
    private DemoData() {}

    /**
     * Smooth random fields: white noise blurred by a Gaussian of standard deviation
     * {@code correlationLength} pixels (separable, reflecting borders), scaled to unit variance.
     * Neighbours closer than the correlation length are strongly dependent, so S peaks at the centre
     * and falls off over about that distance.
     */
    static float[] smoothField(int batch, int channels, int height, int width, double correlationLength, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int plane = height * width;
        float[] out = new float[batch * channels * plane];
        double[] kernel = gaussian(correlationLength);
        int r = kernel.length / 2;
        double[] noise = new double[plane];
        double[] rows = new double[plane];
        for (int p = 0; p < batch * channels; p++) {
            for (int i = 0; i < plane; i++) {
                noise[i] = random.nextGaussian();
            }
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) {
                    double s = 0;
                    for (int k = -r; k <= r; k++) {
                        s += kernel[k + r] * noise[y * width + reflect(x + k, width)];
                    }
                    rows[y * width + x] = s;
                }
            }
            double sum = 0;
            double sumSquares = 0;
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) {
                    double s = 0;
                    for (int k = -r; k <= r; k++) {
                        s += kernel[k + r] * rows[reflect(y + k, height) * width + x];
                    }
                    noise[y * width + x] = s;
                    sum += s;
                    sumSquares += s * s;
                }
            }
            double mean = sum / plane;
            double std = Math.sqrt(Math.max(sumSquares / plane - mean * mean, 1e-30));
            for (int i = 0; i < plane; i++) {
                out[p * plane + i] = (float) ((noise[i] - mean) / std);
            }
        }
        return out;
    }

    /** ReLU(field - threshold): sparse maps like a ReLU network's activations (about 30% non-zero at 0.5). */
    static float[] relu(float[] field, float threshold) {
        float[] out = new float[field.length];
        for (int i = 0; i < field.length; i++) {
            out[i] = Math.max(field[i] - threshold, 0f);
        }
        return out;
    }

    /** Logits of a classifier: a confident-ish correct class plus Gaussian noise. */
    static float[] logits(int rows, int classes, int[] labels, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] z = new float[rows * classes];
        for (int i = 0; i < rows; i++) {
            labels[i] = random.nextInt(classes);
            for (int c = 0; c < classes; c++) {
                z[i * classes + c] = (float) (2 * random.nextGaussian());
            }
            z[i * classes + labels[i]] += 4f;
        }
        return z;
    }

    /** One parameter tensor of a model: its shape, and for a conv weight its kernel size. */
    record ParameterShape(String name, int[] shape, int kernelH, int kernelW, boolean decay) {
        long size() {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }

        /** Convolutions with a k x k window, k > 1, carry a spatial gradient scale. */
        boolean scaled() {
            return kernelH > 1 && kernelW > 1;
        }
    }

    /** ResNet-18 (ImageNet, 1000 classes) as PyTorch lists its parameters: 62 tensors, 11.7 M parameters. */
    static List<ParameterShape> resnet18() {
        List<ParameterShape> p = new ArrayList<>();
        conv(p, "conv1", 64, 3, 7);
        bn(p, "bn1", 64);
        int in = 64;
        int[] widths = {64, 128, 256, 512};
        for (int layer = 0; layer < 4; layer++) {
            int out = widths[layer];
            for (int block = 0; block < 2; block++) {
                String name = "layer" + (layer + 1) + "." + block;
                int blockIn = block == 0 ? in : out;
                conv(p, name + ".conv1", out, blockIn, 3);
                bn(p, name + ".bn1", out);
                conv(p, name + ".conv2", out, out, 3);
                bn(p, name + ".bn2", out);
                if (block == 0 && layer > 0) {
                    conv(p, name + ".downsample.0", out, blockIn, 1);
                    bn(p, name + ".downsample.1", out);
                }
            }
            in = out;
        }
        p.add(new ParameterShape("fc.weight", new int[] {1000, 512}, 1, 1, true));
        p.add(new ParameterShape("fc.bias", new int[] {1000}, 1, 1, false));
        return p;
    }

    private static void conv(List<ParameterShape> p, String name, int out, int in, int k) {
        p.add(new ParameterShape(name + ".weight", new int[] {out, in, k, k}, k, k, true));
    }

    private static void bn(List<ParameterShape> p, String name, int channels) {
        // Trainers exclude norm parameters from weight decay.
        p.add(new ParameterShape(name + ".weight", new int[] {channels}, 1, 1, false));
        p.add(new ParameterShape(name + ".bias", new int[] {channels}, 1, 1, false));
    }

    private static double[] gaussian(double sigma) {
        int r = Math.max(1, (int) Math.ceil(3 * sigma));
        double[] k = new double[2 * r + 1];
        double sum = 0;
        for (int i = -r; i <= r; i++) {
            k[i + r] = Math.exp(-0.5 * i * i / (sigma * sigma));
            sum += k[i + r];
        }
        for (int i = 0; i < k.length; i++) {
            k[i] /= sum;
        }
        return k;
    }

    private static int reflect(int i, int n) {
        if (n == 1) {
            return 0;
        }
        while (i < 0 || i >= n) {
            i = i < 0 ? -i : 2 * (n - 1) - i;
        }
        return i;
    }
}
