/* placeholder: bot/review.c is being written (cmd_review) */
#include <stdio.h>
#include "commands.h"
int cmd_review(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "prbot review: not built yet\n"); return 1; }
