package io.gradshape.train;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/** curves.png: training loss and test accuracy per epoch, one line per arm (the first seed), side by side. */
final class TrainChart {
    private static final int W = 640;
    private static final int H = 420;

    private TrainChart() {}

    static void write(Map<String, List<ArmResult>> results, String setting, Path file) throws IOException {
        XYSeriesCollection loss = new XYSeriesCollection();
        XYSeriesCollection accuracy = new XYSeriesCollection();
        for (Map.Entry<String, List<ArmResult>> e : results.entrySet()) {
            XYSeries l = new XYSeries(e.getKey());
            XYSeries a = new XYSeries(e.getKey());
            for (ArmResult.EpochPoint p : e.getValue().get(0).curve()) {
                l.add(p.epoch(), p.trainLoss());
                a.add(p.epoch(), 100 * p.testAccuracy());
            }
            loss.addSeries(l);
            accuracy.addSeries(a);
        }
        JFreeChart left = ChartFactory.createXYLineChart("training loss", "epoch", "mean loss over the epoch", loss,
                PlotOrientation.VERTICAL, true, false, false);
        JFreeChart right = ChartFactory.createXYLineChart("test accuracy", "epoch", "%", accuracy,
                PlotOrientation.VERTICAL, true, false, false);
        for (JFreeChart c : new JFreeChart[] {left, right}) {
            XYPlot plot = c.getXYPlot();
            plot.setBackgroundPaint(Color.WHITE);
            plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
            plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
            for (int i = 0; i < results.size(); i++) {
                plot.getRenderer().setSeriesStroke(i, new BasicStroke(2f));
            }
            ((org.jfree.chart.axis.NumberAxis) plot.getRangeAxis()).setAutoRangeIncludesZero(false);
        }
        BufferedImage image = new BufferedImage(2 * W, H + 30, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, image.getWidth(), image.getHeight());
            left.draw(g, new java.awt.Rectangle(0, 0, W, H));
            right.draw(g, new java.awt.Rectangle(W, 0, W, H));
            g.setColor(Color.DARK_GRAY);
            g.setFont(g.getFont().deriveFont(11f));
            g.drawString(setting.length() > 200 ? setting.substring(0, 200) + "..." : setting, 8, H + 18);
        } finally {
            g.dispose();
        }
        if (!ImageIO.write(image, "png", file.toFile())) {
            throw new IOException(file + ": no PNG writer in this JVM");
        }
    }
}
