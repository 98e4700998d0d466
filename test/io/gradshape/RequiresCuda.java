package io.gradshape;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Marks a GPU test. It runs when a CUDA device is usable and is skipped, with the reason shown,
 * when none is. With {@code -Dgradshape.test.cuda=required} (the GPU-host runner sets it) it always
 * runs, so that a broken CUDA setup fails loudly instead of skipping.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@ExtendWith(RequiresCuda.Condition.class)
public @interface RequiresCuda {
    final class Condition implements ExecutionCondition {
        @Override
        public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
            if (TestBackends.cudaRequired()) {
                return ConditionEvaluationResult.enabled("gradshape.test.cuda=required");
            }
            String why = Backends.cudaUnavailableReason(0);
            return why == null
                    ? ConditionEvaluationResult.enabled("CUDA device 0 usable")
                    : ConditionEvaluationResult.disabled("GPU test skipped: " + why);
        }
    }
}
