/* merge_cmd.h — `attnc merge` (merge_cmd.c). */
#ifndef ATTNC_MERGE_CMD_H
#define ATTNC_MERGE_CMD_H
#include "options.h"

/* Merge (O1, LSE1) and (O2, LSE2) read from .npy files with attnc_merge and
 * write O (and LSE) as a group; 0 or an exit status (message printed). */
int cmd_merge(const Options *o);

#endif
