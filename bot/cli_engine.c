/* placeholder: bot/cli_engine.c is being written */
#include <stdio.h>
#include "commands.h"
int cmd_generate(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cmd_chat(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cmd_logits(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; return 1; }
