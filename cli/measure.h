/* measure.h — `attnc diff` and `attnc bench` (measure.c). */
#ifndef ATTNC_MEASURE_H
#define ATTNC_MEASURE_H
#include "options.h"

int cmd_diff(const Options *o);
int cmd_bench(const Options *o);

#endif
