/*
 * smmu-bench: /proc/PID/maps layouts for the maps workload, and where the built-in ones live.
 *
 * SPDX-License-Identifier: MIT
 */
#include "workload.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef SMMU_BENCH_DATADIR
#define SMMU_BENCH_DATADIR "bench/data"
#endif
#ifndef SMMU_BENCH_INSTALLED_DATADIR
#define SMMU_BENCH_INSTALLED_DATADIR "/usr/local/share/shadowmmu"
#endif

#define USER_TOP (1ull << 47)

int layout_load(const char *path, const char *name, struct layout *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int cap = 0;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		uint64_t start, end;
		char perms[8] = "";
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &start, &end, perms) != 3)
			continue;
		if (strlen(perms) < 4 || end <= start || end > USER_TOP)
			continue; /* vsyscall and anything outside the canonical user half */
		bool r = perms[0] == 'r', w = perms[1] == 'w', x = perms[2] == 'x';
		if (!r && !w && !x)
			continue; /* ---p: a reservation (guard, heap reserve) the program never touches */
		if (out->n == cap) {
			cap = cap ? 2 * cap : 64;
			struct vma *v = realloc(out->vma, (size_t)cap * sizeof(*v));
			if (!v) {
				fclose(f);
				free(out->vma);
				out->vma = NULL;
				return -ENOMEM;
			}
			out->vma = v;
		}
		struct vma *v = &out->vma[out->n++];
		v->start = start & ~0xfffull;
		v->end = (end + 0xfff) & ~0xfffull;
		v->write = w;
		v->exec = x;
		/* Read-only and shared mappings are file pages every instance shares; private
		 * writable ones are the instance's own memory. */
		v->shared_frames = !w || perms[3] == 's';
	}
	fclose(f);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int layouts_load_dir(const char *dir, struct layout **out)
{
	*out = NULL;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	char **names = NULL;
	int n = 0, cap = 0, r = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".maps"))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			char **nn = realloc(names, (size_t)cap * sizeof(*nn));
			if (!nn) {
				r = -ENOMEM;
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(e->d_name))) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (!r && n) {
		qsort(names, (size_t)n, sizeof(*names), cmp_name);
		*out = calloc((size_t)n, sizeof(**out));
		if (!*out)
			r = -ENOMEM;
	}
	for (int i = 0; !r && i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)(strlen(names[i]) - 5), names[i]);
		r = layout_load(path, name, &(*out)[i]);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r) {
		layouts_free(*out, n);
		*out = NULL;
		return r;
	}
	return n;
}

void layouts_free(struct layout *l, int n)
{
	for (int i = 0; l && i < n; i++)
		free(l[i].vma);
	free(l);
}

static bool has_maps(const char *dir)
{
	struct stat st;
	char path[4096];
	snprintf(path, sizeof(path), "%s/python3.maps", dir);
	return stat(path, &st) == 0;
}

const char *bench_datadir(const char *override)
{
	if (override)
		return override;
	const char *env = getenv("SMMU_BENCH_DATADIR");
	if (env && *env)
		return env;
	if (has_maps(SMMU_BENCH_DATADIR))
		return SMMU_BENCH_DATADIR; /* running from the build tree */
	return SMMU_BENCH_INSTALLED_DATADIR;
}
