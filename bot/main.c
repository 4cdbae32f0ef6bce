/*
 * main.c - prbot's entry point: dispatch argv[1] to a subcommand.
 *
 * This is the only place that calls exit (by returning from main); every
 * subcommand returns its exit status.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"review", cmd_review, "review a pull request's diff and post (or print) the review"},
    {"post", cmd_post, "post a review written by `review --output DIR` (fork workflows)"},
    {"generate", cmd_generate, "generate text from a prompt"},
    {"chat", cmd_chat, "interactive chat with a model"},
    {"logits", cmd_logits, "write the logits of a prompt as float32 [n_tokens][n_vocab]"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"bench", cmd_bench, "measure prefill and decode speed"},
    {"model", cmd_model, "manage models: `prbot model pull URL`"},
    {"serve", cmd_serve, "serve models over HTTP (OpenAI and Ollama APIs)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: prbot COMMAND [options]   (prbot COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "prbot: unknown command '%s' (try prbot --help)\n", argv[1]);
    return 2;
}
