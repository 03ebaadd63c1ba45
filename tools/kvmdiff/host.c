/*
 * smmu-kvmdiff — what a record says about the host it was taken on.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "record.h"

int kd_read_param(const char *mod, const char *name, char *buf, size_t len)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", mod, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, (int)len, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

void kd_record_header(struct kd_record *r, const char *source, const char *scenario)
{
	struct utsname u;
	snprintf(r->source, sizeof(r->source), "%s", source);
	snprintf(r->scenario, sizeof(r->scenario), "%s", scenario);
	snprintf(r->kernel, sizeof(r->kernel), "%s", uname(&u) ? "-" : u.release);
	time_t t = time(NULL);
	struct tm tm;
	if (gmtime_r(&t, &tm))
		strftime(r->date, sizeof(r->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	static const char *const mods[] = { "kvm", "kvm_intel", "kvm_amd", "kvm_pvm" };
	for (size_t m = 0; m < sizeof(mods) / sizeof(mods[0]); m++) {
		char dir[128];
		snprintf(dir, sizeof(dir), "/sys/module/%s/parameters", mods[m]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *e;
		char names[128][256];
		int n = 0;
		while ((e = readdir(d)) && n < 128)
			if (e->d_name[0] != '.')
				snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
		closedir(d);
		qsort(names, (size_t)n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
		for (int i = 0; i < n; i++) {
			char v[64], line[400];
			if (kd_read_param(mods[m], names[i], v, sizeof(v)))
				continue;
			snprintf(line, sizeof(line), "%s.%.200s=%.64s", mods[m], names[i], v);
			kd_record_param(r, line);
		}
	}
}
