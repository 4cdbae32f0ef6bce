/* placeholder: bot/model_pull.c is being written (cmd_model) */
#include <stdio.h>
#include "commands.h"
int cmd_model(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "prbot model: not built yet\n"); return 1; }
