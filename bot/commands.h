/*
 * commands.h - the subcommands of the prbot CLI, one function each.
 *
 * bot/main.c only dispatches on argv[1]; each command parses its own flags,
 * prints its own --help, and returns the process exit status (0 ok, 1 error,
 * 2 usage). Errors are one line on stderr: "prbot CMD: what is wrong".
 */
#ifndef PRBOT_COMMANDS_H
#define PRBOT_COMMANDS_H

int cmd_review(int argc, char **argv);   /* bot/review.c */
int cmd_generate(int argc, char **argv); /* bot/cli_engine.c */
int cmd_chat(int argc, char **argv);     /* bot/cli_engine.c */
int cmd_logits(int argc, char **argv);   /* bot/cli_engine.c */
int cmd_tokenize(int argc, char **argv); /* bot/cli_engine.c */
int cmd_bench(int argc, char **argv);    /* bot/bench.c */
int cmd_model(int argc, char **argv);    /* bot/model_pull.c: `prbot model pull URL ...` */
int cmd_serve(int argc, char **argv);    /* bot/cli_serve.c */
int cmd_post(int argc, char **argv);     /* bot/post.c: `prbot post --from DIR` */

#endif
