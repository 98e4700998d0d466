/* gradshape/scaled_sgd.h: see SPEC.md. Declarations land with the kernel family. */
#ifndef GRADSHAPE_SCALED_SGD_H
#define GRADSHAPE_SCALED_SGD_H
#include "../gradshape.h"
#endif
