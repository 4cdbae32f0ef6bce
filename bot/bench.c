/* placeholder: bot/bench.c is being written (cmd_bench) */
#include <stdio.h>
#include "commands.h"
int cmd_bench(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "prbot bench: not built yet\n"); return 1; }
