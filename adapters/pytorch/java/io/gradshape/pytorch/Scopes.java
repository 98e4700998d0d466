package io.gradshape.pytorch;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;

/** JavaCPP scope handling shared by the adapter's classes. */
final class Scopes {
    private Scopes() {}

    /**
     * Detaches {@code p} from the caller's innermost {@link PointerScope}, if any: objects the adapter
     * keeps across steps (bound tensors, the gradient buffer) must not be freed when a user's per-step
     * scope closes. The adapter closes them itself. (detach releases the scope's reference, which
     * would free {@code p} at once: one reference is taken first.)
     */
    static <P extends Pointer> P keep(P p) {
        PointerScope scope = PointerScope.getInnerScope();
        if (scope != null && p != null) {
            p.retainReference();
            scope.detach(p);
        }
        return p;
    }
}
