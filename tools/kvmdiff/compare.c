/*
 * smmu-kvmdiff — step-by-step comparison of the kernel's record with the library's.
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <string.h>

#include "backend.h"

/* The @i-th event of @kind in @s, or NULL. */
static const struct kd_ev *nth(const struct kd_rstep *s, char kind, size_t i, size_t *count)
{
	const struct kd_ev *found = NULL;
	size_t n = 0;
	for (size_t e = 0; e < s->nev; e++)
		if (s->ev[e].kind == kind) {
			if (n == i)
				found = &s->ev[e];
			n++;
		}
	if (count)
		*count = n;
	return found;
}

static void ev_str(const struct kd_ev *e, char *buf, size_t len)
{
	if (!e)
		snprintf(buf, len, "(none)");
	else
		snprintf(buf, len, "level %u gfn %#" PRIx64 "%s", e->level, e->gfn, e->direct ? " direct" : "");
}

/* First index where the @kind sequences differ, or -1. */
static long seq_diff(const struct kd_rstep *a, const struct kd_rstep *b, char kind)
{
	size_t na, nb;
	nth(a, kind, 0, &na);
	nth(b, kind, 0, &nb);
	size_t n = na > nb ? na : nb;
	for (size_t i = 0; i < n; i++) {
		const struct kd_ev *x = nth(a, kind, i, NULL), *y = nth(b, kind, i, NULL);
		if (!x || !y || x->level != y->level || x->gfn != y->gfn || x->direct != y->direct)
			return (long)i;
	}
	return -1;
}

static void seq_context(FILE *out, const struct kd_rstep *a, const struct kd_rstep *b, char kind, long at)
{
	size_t na, nb;
	nth(a, kind, 0, &na);
	nth(b, kind, 0, &nb);
	fprintf(out, "  %s pages: kernel %zu, library %zu; first difference at #%ld:\n",
		kind == 'c' ? "created" : "zapped", na, nb, at + 1);
	for (long i = at < 3 ? 0 : at - 3; i <= at + 3; i++) {
		char x[64], y[64];
		const struct kd_ev *ea = nth(a, kind, (size_t)i, NULL), *eb = nth(b, kind, (size_t)i, NULL);
		if (!ea && !eb)
			break;
		ev_str(ea, x, sizeof(x));
		ev_str(eb, y, sizeof(y));
		fprintf(out, "  %s #%-5ld kernel %-30s library %s\n", i == at ? ">>" : "  ", i + 1, x, y);
	}
}

/* Append " @word" to the signature @sig (of @len bytes; NULL: none kept). */
static void sig_add(char *sig, size_t len, const char *word)
{
	if (sig)
		snprintf(sig + strlen(sig), len - strlen(sig), " %s", word);
}

int kd_compare(FILE *out, const struct kd_record *want, const struct kd_record *got)
{
	return kd_compare_sig(out, want, got, NULL, 0);
}

int kd_compare_sig(FILE *out, const struct kd_record *want, const struct kd_record *got, char *sig,
		   size_t siglen)
{
	if (sig && siglen)
		sig[0] = 0;
	if (strcmp(want->scenario, got->scenario)) {
		fprintf(out, "records of different scenarios: '%s' and '%s'\n", want->scenario, got->scenario);
		return 2;
	}
	bool events = want->events && got->events;
	fprintf(out, "scenario %s: %s record (kernel %s, %s) against %s record\n", want->scenario, want->source,
		want->kernel, want->date, got->source);
	if (!events)
		fprintf(out, "  created/zapped sequences NOT compared: the %s record has none\n",
			!want->events ? want->source : got->source);
	char absent[256] = "";
	for (int c = 0; c < KD_NCTR; c++) {
		bool w = want->nsteps && want->steps[0].have[c], g = got->nsteps && got->steps[0].have[c];
		if (w != g)
			snprintf(absent + strlen(absent), sizeof(absent) - strlen(absent), " %s (no %s value)",
				 kd_ctr_name((enum kd_ctr)c), w ? got->source : want->source);
	}
	if (absent[0])
		fprintf(out, "  counters not compared:%s\n", absent);

	size_t n = want->nsteps > got->nsteps ? want->nsteps : got->nsteps;
	long first = -1;
	fprintf(out, "  %-4s %-40s %12s %12s %8s  %s\n", "step", "line", "kernel ns", "library ns", "ratio", "status");
	for (size_t i = 0; i < n; i++) {
		const struct kd_rstep *a = i < want->nsteps ? &want->steps[i] : NULL;
		const struct kd_rstep *b = i < got->nsteps ? &got->steps[i] : NULL;
		bool same = a && b && !strcmp(a->text, b->text);
		for (int c = 0; same && c < KD_NCTR; c++)
			same = !(a->have[c] && b->have[c]) || a->ctr[c] == b->ctr[c];
		if (same && events)
			same = seq_diff(a, b, 'c') < 0 && seq_diff(a, b, 'z') < 0;
		if (!same && first < 0)
			first = (long)i;
		char ratio[16] = "-";
		if (a && b && a->ns)
			snprintf(ratio, sizeof(ratio), "%.2f", (double)b->ns / (double)a->ns);
		fprintf(out, "  %-4zu %-40.40s %12" PRIu64 " %12" PRIu64 " %8s  %s\n", i + 1,
			(a ? a : b)->text, a ? a->ns : 0, b ? b->ns : 0, ratio, same ? "ok" : "DIFFERS");
	}
	if (first < 0) {
		fprintf(out, "  match: %zu steps\n", n);
		return 0;
	}
	const struct kd_rstep *a = (size_t)first < want->nsteps ? &want->steps[first] : NULL;
	const struct kd_rstep *b = (size_t)first < got->nsteps ? &got->steps[first] : NULL;
	fprintf(out, "first divergence at step %ld: ", first + 1);
	if (sig)
		snprintf(sig, siglen, "step %ld:", first + 1);
	if (!a || !b) {
		fprintf(out, "the %s record ends before it\n", a ? got->source : want->source);
		sig_add(sig, siglen, "steps");
		return 1;
	}
	fprintf(out, "scenario line %d: %s\n", a->line, a->text);
	if (strcmp(a->text, b->text)) {
		fprintf(out, "  the steps differ: kernel '%s', library '%s'\n", a->text, b->text);
		sig_add(sig, siglen, "steps");
	}
	if (first > 0) {
		const struct kd_rstep *p = &want->steps[first - 1];
		fprintf(out, "  after step %ld (%s) both agreed\n", first, p->text);
	}
	for (int c = 0; c < KD_NCTR; c++)
		if (a->have[c] && b->have[c] && a->ctr[c] != b->ctr[c]) {
			sig_add(sig, siglen, kd_ctr_name((enum kd_ctr)c));
			uint64_t pa = first > 0 ? want->steps[first - 1].ctr[c] : 0;
			uint64_t pb = first > 0 ? got->steps[first - 1].ctr[c] : 0;
			fprintf(out, "  %-18s kernel %" PRIu64 " (+%" PRId64 " in this step), library %" PRIu64
				     " (+%" PRId64 ")\n",
				kd_ctr_name((enum kd_ctr)c), a->ctr[c], (int64_t)(a->ctr[c] - pa), b->ctr[c],
				(int64_t)(b->ctr[c] - pb));
		}
	if (events) {
		size_t fa, fb;
		nth(a, 'f', 0, &fa);
		nth(b, 'f', 0, &fb);
		fprintf(out, "  guest page-table walks in this step (not compared): kernel %zu, library %zu\n", fa, fb);
		long dc = seq_diff(a, b, 'c'), dz = seq_diff(a, b, 'z');
		if (dc >= 0) {
			seq_context(out, a, b, 'c', dc);
			sig_add(sig, siglen, "created");
		}
		if (dz >= 0) {
			seq_context(out, a, b, 'z', dz);
			sig_add(sig, siglen, "zapped");
		}
	}
	return 1;
}
