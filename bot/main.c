/*
 * main.c - prbot's entry point: dispatch argv[1] to a subcommand.
 *
 * This is the only place that calls exit (by returning from main); every
 * subcommand returns its exit status. Process-wide settings that come from
 * the environment are read here, once, and handed to the layers below
 * (engine/ never reads the environment).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "errors.h"
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

/* PRBOT_ISA=scalar|avx2|avx512|avx512vnni|neon|neondot|neoni8mm caps the SIMD kernels (tests,
 * benchmarks, bug hunts); an unknown value is reported and ignored. */
static void isa_from_env(void)
{
    const char *isa = getenv("PRBOT_ISA");
    if (isa && *isa && engine_set_isa(isa, NULL, 0))
        fprintf(stderr, "prbot: PRBOT_ISA=%s is not one of scalar, avx2, avx512, avx512vnni, neon, neondot, neoni8mm; ignoring it\n",
                isa);
}

/* Library modules' log lines (retries, PRBOT_DEBUG traces) go to stderr. */
static void log_to_stderr(const char *line, void *user)
{
    (void)user;
    fprintf(stderr, "%s\n", line);
}

int main(int argc, char **argv)
{
    log_set(log_to_stderr, NULL);
    isa_from_env();
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
