/* gradshape/spatial_dependence.h: see SPEC.md. Declarations land with the kernel family. */
#ifndef GRADSHAPE_SPATIAL_DEPENDENCE_H
#define GRADSHAPE_SPATIAL_DEPENDENCE_H
#include "../gradshape.h"
#endif
