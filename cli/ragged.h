/* ragged.h — `attnc run --q-start QS.npy --k-start KS.npy`: a ragged batch
 * (ragged.c). */
#ifndef ATTNC_RAGGED_H
#define ATTNC_RAGGED_H
#include "options.h"

/* Run o's attention over sequences packed without padding: Q [rows, H, D],
 * K [rows, Hkv, D], V [rows, Hkv, Dv], O [rows, H, Dv], LSE [H, rows];
 * sequence b's rows are [QS[b], QS[b + 1]) of Q and [KS[b], KS[b + 1]) of K
 * and V (int32, B + 1 entries).  0 or an exit status. */
int cmd_run_ragged(const Options *o);

#endif
