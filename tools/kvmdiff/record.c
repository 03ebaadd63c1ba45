/*
 * smmu-kvmdiff — records: build, write and read (format in record.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "record.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const ctr_names[KD_NCTR] = {
	[KD_C_MMU_CACHE_MISS] = "mmu_cache_miss", [KD_C_MMU_SHADOW_ZAPPED] = "mmu_shadow_zapped",
	[KD_C_MMU_RECYCLED] = "mmu_recycled",     [KD_C_PF_FIXED] = "pf_fixed",
	[KD_C_PAGES_4K] = "pages_4k",             [KD_C_PAGES_2M] = "pages_2m",
	[KD_C_MMU_PTE_WRITE] = "mmu_pte_write",   [KD_C_MMU_UNSYNC] = "mmu_unsync",
	[KD_C_MMU_FLOODED] = "mmu_flooded",       [KD_C_REMOTE_TLB_FLUSH] = "remote_tlb_flush",
	[KD_C_REMOTE_TLB_FLUSH_REQUESTS] = "remote_tlb_flush_requests",
	[KD_C_DIRTY_PAGES] = "dirty_pages",
	[KD_C_PF_MMIO_SPTE_CREATED] = "pf_mmio_spte_created",
};

const char *kd_ctr_name(enum kd_ctr c)
{
	return (unsigned)c < KD_NCTR ? ctr_names[c] : "?";
}

/* Grow *arr (of *cap elements of @size) to hold n + 1. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, nc * size);
	if (!p)
		return -1;
	*arr = p;
	*cap = nc;
	return 0;
}

struct kd_rstep *kd_record_step(struct kd_record *r, int line, const char *text)
{
	if (grow((void **)&r->steps, &r->cap, r->nsteps, sizeof(*r->steps)))
		return NULL;
	struct kd_rstep *s = &r->steps[r->nsteps++];
	memset(s, 0, sizeof(*s));
	s->line = line;
	snprintf(s->text, sizeof(s->text), "%s", text);
	return s;
}

int kd_rstep_event(struct kd_rstep *s, char kind, int level, uint64_t gfn, bool direct)
{
	if (grow((void **)&s->ev, &s->cap, s->nev, sizeof(*s->ev)))
		return -1;
	s->ev[s->nev++] = (struct kd_ev){ .kind = kind, .level = (uint8_t)level, .direct = direct, .gfn = gfn };
	return 0;
}

int kd_rstep_fault(struct kd_rstep *s, uint64_t addr, uint32_t pferr)
{
	if (kd_rstep_event(s, 'f', 0, addr, false))
		return -1;
	s->ev[s->nev - 1].pferr = pferr;
	return 0;
}

int kd_record_param(struct kd_record *r, const char *p)
{
	void *n = realloc(r->params, (r->nparams + 1) * sizeof(*r->params));
	if (!n)
		return -1;
	r->params = n;
	snprintf(r->params[r->nparams++], sizeof(*r->params), "%s", p);
	return 0;
}

int kd_record_note(struct kd_record *r, const char *fmt, ...)
{
	void *n = realloc(r->notes, (r->nnotes + 1) * sizeof(*r->notes));
	if (!n)
		return -1;
	r->notes = n;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->notes[r->nnotes++], sizeof(*r->notes), fmt, ap);
	va_end(ap);
	return 0;
}

void kd_record_free(struct kd_record *r)
{
	for (size_t i = 0; i < r->nsteps; i++)
		free(r->steps[i].ev);
	free(r->steps);
	free(r->params);
	free(r->notes);
	memset(r, 0, sizeof(*r));
}

int kd_record_write(FILE *f, const struct kd_record *r)
{
	fprintf(f, "smmu-kvmdiff record 1\nsource %s\nscenario %s\nkernel %s\ndate %s\n", r->source,
		r->scenario, r->kernel[0] ? r->kernel : "-", r->date[0] ? r->date : "-");
	fprintf(f, "events %d\n", r->events);
	for (size_t i = 0; i < r->nparams; i++)
		fprintf(f, "param %s\n", r->params[i]);
	for (size_t i = 0; i < r->nnotes; i++)
		fprintf(f, "note %s\n", r->notes[i]);
	for (size_t i = 0; i < r->nsteps; i++) {
		const struct kd_rstep *s = &r->steps[i];
		fprintf(f, "step %zu %d %s\nns %" PRIu64 "\n", i + 1, s->line, s->text, s->ns);
		for (int c = 0; c < KD_NCTR; c++) {
			if (s->have[c])
				fprintf(f, "ctr %s %" PRIu64 "\n", ctr_names[c], s->ctr[c]);
			else
				fprintf(f, "ctr %s -\n", ctr_names[c]);
		}
		for (size_t e = 0; e < s->nev; e++) {
			const struct kd_ev *v = &s->ev[e];
			if (v->kind == 'f')
				fprintf(f, "f %#" PRIx64 " %#x\n", v->gfn, v->pferr);
			else
				fprintf(f, "%c %u %#" PRIx64 " %d\n", v->kind, v->level, v->gfn, v->direct);
		}
	}
	fprintf(f, "end\n");
	return ferror(f) ? -1 : 0;
}

int kd_record_save(const char *path, const struct kd_record *r)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int rc = kd_record_write(f, r);
	if (fclose(f))
		rc = -1;
	return rc;
}

static int bad(char *err, size_t errlen, const char *path, int line, const char *what)
{
	snprintf(err, errlen, "%s:%d: %s", path, line, what);
	return -1;
}

int kd_record_load(const char *path, struct kd_record *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		errno = e;
		return e == ENOENT ? -2 : -1;
	}
	char buf[512];
	int line = 0, rc = 0;
	bool ended = false;
	struct kd_rstep *s = NULL;
	while (!rc && fgets(buf, sizeof(buf), f)) {
		line++;
		buf[strcspn(buf, "\n")] = 0;
		if (!buf[0] || buf[0] == '#')
			continue;
		char *arg = strchr(buf, ' ');
		arg = arg ? arg + 1 : buf + strlen(buf);
		if (line == 1) {
			if (strcmp(buf, "smmu-kvmdiff record 1"))
				rc = bad(err, errlen, path, line, "not a record (first line)");
		} else if (ended) {
			rc = bad(err, errlen, path, line, "text after 'end'");
		} else if (!strncmp(buf, "source ", 7)) {
			snprintf(r->source, sizeof(r->source), "%s", arg);
		} else if (!strncmp(buf, "scenario ", 9)) {
			snprintf(r->scenario, sizeof(r->scenario), "%s", arg);
		} else if (!strncmp(buf, "kernel ", 7)) {
			snprintf(r->kernel, sizeof(r->kernel), "%s", arg);
		} else if (!strncmp(buf, "date ", 5)) {
			snprintf(r->date, sizeof(r->date), "%s", arg);
		} else if (!strncmp(buf, "events ", 7)) {
			r->events = atoi(arg) != 0;
		} else if (!strncmp(buf, "param ", 6)) {
			rc = kd_record_param(r, arg) ? bad(err, errlen, path, line, "out of memory") : 0;
		} else if (!strncmp(buf, "note ", 5)) {
			rc = kd_record_note(r, "%s", arg) ? bad(err, errlen, path, line, "out of memory") : 0;
		} else if (!strncmp(buf, "step ", 5)) {
			size_t n;
			int l, off = 0;
			if (sscanf(arg, "%zu %d %n", &n, &l, &off) < 2 || !off || n != r->nsteps + 1)
				rc = bad(err, errlen, path, line, "step: expected 'step N LINE TEXT' numbered from 1");
			else if (!(s = kd_record_step(r, l, arg + off)))
				rc = bad(err, errlen, path, line, "out of memory");
		} else if (!s) {
			rc = bad(err, errlen, path, line, "counter or event before the first step");
		} else if (!strncmp(buf, "ns ", 3)) {
			if (sscanf(arg, "%" SCNu64, &s->ns) != 1)
				rc = bad(err, errlen, path, line, "ns: expected a number");
		} else if (!strncmp(buf, "ctr ", 4)) {
			char name[40], val[32];
			int c;
			if (sscanf(arg, "%39s %31s", name, val) != 2)
				rc = bad(err, errlen, path, line, "ctr: expected 'ctr NAME VALUE'");
			for (c = 0; !rc && c < KD_NCTR && strcmp(name, ctr_names[c]); c++)
				;
			if (!rc && c == KD_NCTR)
				rc = bad(err, errlen, path, line, "ctr: unknown counter");
			else if (!rc && strcmp(val, "-")) {
				char *end;
				s->ctr[c] = strtoull(val, &end, 10);
				s->have[c] = true;
				if (*end)
					rc = bad(err, errlen, path, line, "ctr: value is not a number or '-'");
			}
		} else if ((buf[0] == 'c' || buf[0] == 'z') && buf[1] == ' ') {
			unsigned level;
			int direct;
			uint64_t gfn;
			if (sscanf(arg, "%u %" SCNx64 " %d", &level, &gfn, &direct) != 3 || level < 1 || level > 5)
				rc = bad(err, errlen, path, line, "event: expected 'c|z LEVEL GFN DIRECT'");
			else if (kd_rstep_event(s, buf[0], (int)level, gfn, direct != 0))
				rc = bad(err, errlen, path, line, "out of memory");
		} else if (buf[0] == 'f' && buf[1] == ' ') {
			uint64_t addr;
			unsigned pferr;
			if (sscanf(arg, "%" SCNx64 " %x", &addr, &pferr) != 2)
				rc = bad(err, errlen, path, line, "walk: expected 'f ADDR PFERR'");
			else if (kd_rstep_fault(s, addr, pferr))
				rc = bad(err, errlen, path, line, "out of memory");
		} else if (!strcmp(buf, "end")) {
			ended = true;
		} else {
			rc = bad(err, errlen, path, line, "unknown line");
		}
	}
	if (!rc && ferror(f))
		rc = bad(err, errlen, path, line, strerror(errno));
	if (!rc && !ended)
		rc = bad(err, errlen, path, line, "truncated: no 'end' line");
	fclose(f);
	if (rc)
		kd_record_free(r);
	return rc;
}
