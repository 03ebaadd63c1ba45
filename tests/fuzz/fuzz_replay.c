/*
 * Replay a corpus through the fuzz harness without libFuzzer (any compiler): every file named
 * on the command line, and every regular file in every directory named, in name order.
 *
 *   fuzz_replay [--require-all-ops] PATH...
 *
 * Prints how many inputs and operations ran; fails when no input was found, and with
 * --require-all-ops when some kind of operation never ran or no operation broke the lock (the
 * seed corpus must cover them all, and drive the lock-break paths through forced breaks).
 * A crash or audit violation abort()s inside the harness, naming the operations that led to it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_ops.h"

#define REPLAY_MAX_INPUT (1u << 20)

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	uint8_t *buf = malloc(REPLAY_MAX_INPUT);
	if (!buf) {
		fclose(f);
		return -1;
	}
	size_t n = fread(buf, 1, REPLAY_MAX_INPUT, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		perror(path);
		return -1;
	}
	int r = 0;
	for (int i = 0; i < n; i++) {
		char full[4096];
		if (names[i]->d_name[0] != '.') {
			snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
			if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && run_file(full) != 0)
				r = -1;
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	bool require_all = false;
	int r = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--require-all-ops") == 0)
			require_all = true;
		else if (run_path(argv[i]) != 0)
			r = 1;
	}
	const struct fuzz_stats *s = fuzz_ops_stats();
	printf("fuzz_replay: %llu inputs, %llu operations (%.1f per input), %llu audits, %llu lock breaks, %llu racing faults, "
	       "%llu accesses unchecked (stale allowed), %llu MMIO-generation wraps, %llu results not documented by their header; results hash %016llx\n",
	       (unsigned long long)s->inputs, (unsigned long long)s->ops,
	       s->inputs ? (double)s->ops / (double)s->inputs : 0.0, (unsigned long long)s->audits,
	       (unsigned long long)s->lock_breaks, (unsigned long long)s->racing_faults,
	       (unsigned long long)s->unchecked_stale, (unsigned long long)s->wrap_zaps,
	       (unsigned long long)s->undocumented,
	       (unsigned long long)s->result_hash);
	int missing = 0;
	for (int op = 0; op < KIND_COUNT; op++) {
		printf("  %-15s %llu\n", fuzz_op_name(op), (unsigned long long)s->per_op[op]);
		missing += s->per_op[op] == 0;
	}
	if (!s->inputs) {
		fprintf(stderr, "fuzz_replay: no input found\n");
		return 1;
	}
	if (require_all && missing) {
		fprintf(stderr, "fuzz_replay: %d kinds of operation never ran\n", missing);
		return 1;
	}
	if (require_all && !s->lock_breaks) {
		fprintf(stderr, "fuzz_replay: no operation broke the lock (forced breaks do not work)\n");
		return 1;
	}
	return r;
}
