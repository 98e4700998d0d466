/* gradshape/power_grad.h: see SPEC.md. Declarations land with the kernel family. */
#ifndef GRADSHAPE_POWER_GRAD_H
#define GRADSHAPE_POWER_GRAD_H
#include "../gradshape.h"
#endif
