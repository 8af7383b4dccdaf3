/* show_cmd.h — `attnc show` (show_cmd.c). */
#ifndef ATTNC_SHOW_CMD_H
#define ATTNC_SHOW_CMD_H
#include "options.h"

/* Draw the mask and tile map of o's call for --at B,H into -o as a PNG; an exit status. */
int cmd_show(const Options *o);

#endif
