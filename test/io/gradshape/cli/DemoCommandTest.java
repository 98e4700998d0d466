package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The main job end to end: it runs, prints every section, and its own checks against the formulas hold. */
class DemoCommandTest {
    private static double number(String out, String regex) {
        Matcher m = Pattern.compile(regex).matcher(out);
        assertTrue(m.find(), "no match for " + regex + " in:\n" + out);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void demoRunsOnTheCpuAndItsSelfChecksHold() {
        CliRun r = CliRun.of("demo", "--backend", "cpu", "--repeats", "1");
        assertEquals(Main.EXIT_OK, r.status(), r.toString());
        String out = r.out();
        assertTrue(out.contains("backend: CPU ("), out);
        for (String section : new String[] {"1. Spatial dependence", "2. One scaled SGD step", "3. PowerGrad", "4. Timing"}) {
            assertTrue(out.contains(section), section + " missing:\n" + out);
        }
        // The scaled SGD step against SPEC.md section 2 evaluated in float64.
        assertTrue(number(out, "max relative error ([0-9.eE+-]+)") < 1e-5, out);
        // Both PGT rows (alpha 1 and 0.25) against softmax(alpha z) - onehot in float64.
        Matcher rows = Pattern.compile("(?m)^\\s+(1\\.00|0\\.25)\\s+\\S+\\s+\\S+\\s+\\S+\\s+([0-9.eE+-]+)$").matcher(out);
        int seen = 0;
        while (rows.find()) {
            assertTrue(Double.parseDouble(rows.group(2)) < 1e-6, rows.group());
            seen++;
        }
        assertEquals(2, seen, out);
        assertTrue(out.contains("zero pairs removed"), out);
        for (String kernel : new String[] {"spatial dependence 3x3", "spatial dependence 5x5", "scaled SGD step", "PGT loss + gradient"}) {
            assertTrue(out.contains(kernel), kernel + " missing from the timing table:\n" + out);
        }
    }

    @Test
    void repeatsAreValidated() {
        CliRun r = CliRun.of("demo", "--repeats", "0");
        assertEquals(Main.EXIT_USAGE, r.status(), r.toString());
        assertEquals("gradshape: --repeats: '0' must be from 1 to 1000 (see 'gradshape demo --help')\n", r.err());
    }
}
