/*
 * smmu-kvmdiff — does libshadowmmu do what this kernel's shadow MMU does?
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "backend.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: smmu-kvmdiff [options] SCENARIO...\n"
		"Runs each scenario on this kernel's KVM (a real guest on /dev/kvm) and through libshadowmmu,\n"
		"and compares them step by step: KVM's stat counters, the shadow pages created and zapped.\n"
		"\n"
		"  (no option)      live: kernel and library now, compared\n"
		"  --record DIR     also save the kernel's results as DIR/NAME.rec (golden records)\n"
		"  --golden DIR     compare the library with DIR/NAME.rec instead of a live kernel run;\n"
		"                   with --live, also compare a live kernel run with the record\n"
		"  --live           with --golden: rerun on the kernel too (a kernel run that differs from\n"
		"                   its record is shown and made again, twice at most)\n"
		"  --known FILE     divergences of the library from the kernel that are known and explained:\n"
		"                   lines 'SCENARIO step N: WHAT  # why'; a comparison that diverges exactly\n"
		"                   so passes as known, one that matches or diverges otherwise fails\n"
		"                   (default with --golden: DIR/known-divergences, where it exists)\n"
		"  --library        run the library only (no comparison); with --audit, audit every step\n"
		"  --audit          audit the library's state after every step (any violation fails)\n"
		"  --dump FILE      write the library's record to FILE (one scenario)\n"
		"  --compare A B    compare two record files (A as the kernel's) and exit\n"
		"  --check          say whether the kernel backend and its tracing can run here, and exit\n"
		"                   (0 both, 77 not)\n"
		"  --help\n"
		"\n"
		"Exit status: 0 every comparison matched; 1 a divergence or an error; 77 nothing could be\n"
		"compared here (no usable /dev/kvm, no golden record), or a live run asked for could not be\n"
		"made, with the reason on stdout.\n"
		"Scenario format, record format and what is compared: tools/kvmdiff/README.md.\n");
}

struct opts {
	const char *record_dir, *golden_dir, *dump, *known;
	bool live, library, audit;
};

struct tally {
	int compared, matched, known, skipped, failed;
	int live_skipped; /* scenarios whose live kernel run could not be made */
	int kernel_reruns; /* live kernel runs made again because one differed from its record */
};

/* The known divergences: scenario name and signature (kd_compare_sig), one per scenario. */
struct known {
	char name[128], sig[512];
};
static struct known *known_list;
static size_t known_n;
static const char *known_file;

static char *trim(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r'))
		p[--n] = 0;
	return p;
}

/* Load @path ('SCENARIO step N: WHAT  # why' lines). @return 0, or -1 with a message. */
static int known_load(const char *path, bool must_exist)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (!must_exist && errno == ENOENT)
			return 0;
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	known_file = path;
	char line[1024];
	int ln = 0;
	while (fgets(line, sizeof(line), f)) {
		ln++;
		char *h = strchr(line, '#');
		if (h)
			*h = 0;
		char *p = trim(line), *sp = strchr(p, ' ');
		if (!*p)
			continue;
		if (!sp || strncmp(trim(sp + 1), "step ", 5)) {
			fprintf(stderr, "%s:%d: expected 'SCENARIO step N: WHAT'\n", path, ln);
			fclose(f);
			return -1;
		}
		*sp = 0;
		struct known *k = realloc(known_list, (known_n + 1) * sizeof(*k));
		if (!k) {
			fclose(f);
			return -1;
		}
		known_list = k;
		snprintf(k[known_n].name, sizeof(k[known_n].name), "%s", p);
		snprintf(k[known_n].sig, sizeof(k[known_n].sig), "%s", trim(sp + 1));
		known_n++;
	}
	fclose(f);
	return 0;
}

static const char *known_sig(const char *name)
{
	for (size_t i = 0; i < known_n; i++)
		if (!strcmp(known_list[i].name, name))
			return known_list[i].sig;
	return NULL;
}

/* Compare the library (@got) with the kernel (@want) and count; a divergence listed as known
 * passes. @return 1 on a divergence not known, or a known one that no longer happens; else 0. */
static int tally_compare(struct tally *t, const struct kd_record *want, const struct kd_record *got)
{
	char sig[512];
	t->compared++;
	int r = kd_compare_sig(stdout, want, got, sig, sizeof(sig));
	const char *k = strcmp(got->source, "library") ? NULL : known_sig(want->scenario);
	if (!r && !k) {
		t->matched++;
		return 0;
	}
	if (!k)
		return 1;
	if (!r) {
		printf("%s: listed in %s as '%s', but it matches now: remove that line\n", want->scenario,
		       known_file, k);
		return 1;
	}
	if (strcmp(sig, k)) {
		printf("%s: the divergence changed: %s lists '%s', now '%s'\n", want->scenario, known_file, k,
		       sig);
		return 1;
	}
	printf("%s: known divergence, as %s lists it: %s\n", want->scenario, known_file, sig);
	t->known++;
	return 0;
}

static void rec_path(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s.rec", dir, name);
}

/*
 * The kernel is not deterministic under load (the nested kernel's own background work, such as
 * THP collapse, can add a flush or a zap to a step; khugepaged is put to sleep, not all of it).
 * A live run that differs from the scenario's golden record is shown in full and run again, up
 * to KD_LIVE_RERUNS times; the first run that matches the record takes its place. The library
 * is still compared with the record and with that run, so nothing of the library is excused,
 * and every rerun is counted in the summary line. @return 0, or -1 when a rerun could not run.
 */
#define KD_LIVE_RERUNS 2
static int rerun_until_record(const struct kd_scenario *sc, const struct kd_record *gold, struct kd_record *kern,
			      struct tally *t)
{
	for (int n = 0; n < KD_LIVE_RERUNS; n++) {
		char sig[512], *text = NULL, err[2048];
		size_t len = 0;
		FILE *mem = open_memstream(&text, &len);
		if (!mem)
			return -1;
		int r = kd_compare_sig(mem, gold, kern, sig, sizeof(sig));
		fclose(mem);
		if (!r) {
			free(text);
			return 0;
		}
		printf("%s: live kernel run %d differs from its golden record (%s); running it again:\n%s",
		       sc->name, n + 1, sig, text ? text : "");
		free(text);
		kd_record_free(kern);
		memset(kern, 0, sizeof(*kern));
		t->kernel_reruns++;
		if (kd_kvm_run(sc, kern, err, sizeof(err))) {
			fprintf(stderr, "kernel (rerun): %s\n", err);
			return -1;
		}
	}
	return 0; /* the last rerun is compared as any run: a difference left fails */
}

static int one(const struct opts *o, const char *path, struct tally *t)
{
	char err[2048];
	struct kd_scenario sc;
	struct kd_record lib = { 0 }, kern = { 0 }, gold = { 0 };
	int rc = 0;
	if (kd_scenario_load(path, &sc, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		t->failed++;
		return 1;
	}
	/* The golden record first: the library runs with the profile of the kernel it was taken
	 * on; without one, of the kernel a live run uses (this machine's). */
	bool have_gold = false;
	if (o->golden_dir) {
		char rp[1024];
		rec_path(rp, sizeof(rp), o->golden_dir, sc.name);
		int r = kd_record_load(rp, &gold, err, sizeof(err));
		if (r == -2) {
			printf("%s: SKIP: no golden record: none taken on a kernel with a usable /dev/kvm yet "
			       "(%s)\n", sc.name, rp);
		} else if (r) {
			fprintf(stderr, "%s\n", err);
			t->failed++;
			rc = 1;
			goto out;
		} else {
			have_gold = true;
		}
	}
	struct kd_target tg;
	struct utsname un;
	kd_target_for_kernel(have_gold ? gold.kernel : uname(&un) == 0 ? un.release : NULL, &tg);
	if (kd_lib_run(&sc, &tg, &lib, o->audit, err, sizeof(err))) {
		fprintf(stderr, "library: %s\n", err);
		t->failed++;
		rc = 1;
		goto out;
	}
	if (o->dump && kd_record_save(o->dump, &lib)) {
		fprintf(stderr, "%s: %s\n", o->dump, strerror(errno));
		t->failed++;
		rc = 1;
		goto out;
	}
	if (o->library) {
		const struct kd_rstep *s = &lib.steps[lib.nsteps - 1];
		printf("%s: library ran %zu steps%s; at the end %" PRIu64 " pages created, %" PRIu64
		       " zapped, %" PRIu64 " pf_fixed\n",
		       sc.name, lib.nsteps, o->audit ? ", audit clean after each" : "", s->ctr[KD_C_MMU_CACHE_MISS],
		       s->ctr[KD_C_MMU_SHADOW_ZAPPED], s->ctr[KD_C_PF_FIXED]);
		goto out;
	}
	bool want_kernel = !o->golden_dir || o->live;
	bool have_kernel = false;
	if (want_kernel) {
		int r = kd_kvm_run(&sc, &kern, err, sizeof(err));
		if (r == KD_EXIT_SKIP) {
			printf("%s: SKIP live run: %s\n", sc.name, err);
			t->live_skipped++;
		} else if (r) {
			fprintf(stderr, "kernel: %s\n", err);
			t->failed++;
			rc = 1;
			goto out;
		} else {
			have_kernel = true;
			for (size_t i = 0; i < kern.nnotes; i++)
				printf("%s: kernel note: %s\n", sc.name, kern.notes[i]);
		}
	}
	if (have_kernel && o->record_dir) {
		char rp[1024];
		rec_path(rp, sizeof(rp), o->record_dir, sc.name);
		if (kd_record_save(rp, &kern)) {
			fprintf(stderr, "%s: %s\n", rp, strerror(errno));
			t->failed++;
			rc = 1;
			goto out;
		}
		printf("%s: recorded %s\n", sc.name, rp);
	}
	if (have_gold)
		rc |= tally_compare(t, &gold, &lib);
	if (have_kernel && have_gold && rerun_until_record(&sc, &gold, &kern, t)) {
		t->failed++;
		rc = 1;
		goto out;
	}
	if (have_kernel) {
		rc |= tally_compare(t, &kern, &lib);
		if (have_gold) {
			printf("%s: live kernel against the golden record:\n", sc.name);
			rc |= tally_compare(t, &gold, &kern);
		}
	}
	if (!have_gold && !have_kernel)
		t->skipped++;
out:
	kd_record_free(&lib);
	kd_record_free(&kern);
	kd_record_free(&gold);
	kd_scenario_free(&sc);
	return rc;
}

static int compare_files(const char *a, const char *b)
{
	char err[1024];
	struct kd_record ra, rb;
	if (kd_record_load(a, &ra, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (kd_record_load(b, &rb, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		kd_record_free(&ra);
		return 1;
	}
	int r = kd_compare(stdout, &ra, &rb);
	kd_record_free(&ra);
	kd_record_free(&rb);
	return r ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "record", required_argument, 0, 'r' }, { "golden", required_argument, 0, 'g' },
		{ "live", no_argument, 0, 'l' },         { "library", no_argument, 0, 'L' },
		{ "audit", no_argument, 0, 'a' },        { "dump", required_argument, 0, 'd' },
		{ "compare", no_argument, 0, 'c' },      { "help", no_argument, 0, 'h' },
		{ "check", no_argument, 0, 'k' },        { "known", required_argument, 0, 'K' },
		{ 0, 0, 0, 0 },
	};
	struct opts o = { 0 };
	bool compare = false, check = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'r': o.record_dir = optarg; break;
		case 'g': o.golden_dir = optarg; break;
		case 'l': o.live = true; break;
		case 'L': o.library = true; break;
		case 'a': o.audit = true; break;
		case 'd': o.dump = optarg; break;
		case 'c': compare = true; break;
		case 'k': check = true; break;
		case 'K': o.known = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (check) {
		char why[1024], tr[512];
		int k = kd_kvm_probe(why, sizeof(why));
		int t = kd_trace_check(tr, sizeof(tr));
		printf("kernel backend: %s\n", k ? why : why[0] ? why : "usable");
		printf("tracing: %s\n", tr);
		return k || t ? KD_EXIT_SKIP : 0;
	}
	if (compare) {
		if (argc - optind != 2) {
			fprintf(stderr, "--compare takes two record files\n");
			return 1;
		}
		return compare_files(argv[optind], argv[optind + 1]);
	}
	if (optind == argc) {
		usage(stderr);
		return 1;
	}
	if (o.dump && argc - optind != 1) {
		fprintf(stderr, "--dump takes one scenario\n");
		return 1;
	}
	if (o.record_dir && o.golden_dir) {
		fprintf(stderr, "--record and --golden do not go together\n");
		return 1;
	}
	if (o.known && known_load(o.known, true))
		return 1;
	if (!o.known && o.golden_dir) {
		static char kp[1024];
		snprintf(kp, sizeof(kp), "%s/known-divergences", o.golden_dir);
		if (known_load(kp, false))
			return 1;
	}
	struct tally t = { 0 };
	int rc = 0;
	for (int i = optind; i < argc; i++)
		rc |= one(&o, argv[i], &t);
	if (!o.library)
		printf("smmu-kvmdiff: %d scenario(s): %d compared, %d matched, %d known divergences, "
		       "%d skipped, %d failed to run%s",
		       argc - optind, t.compared, t.matched, t.known, t.skipped, t.failed,
		       t.live_skipped ? " (live runs skipped: see SKIP above)" : "");
	if (!o.library && t.kernel_reruns)
		printf(" (%d live kernel run(s) made again: see 'running it again' above)", t.kernel_reruns);
	if (!o.library)
		printf("\n");
	if (rc)
		return 1;
	free(known_list);
	/* A live run that could not be made is a skip, even where the records were compared: the
	 * golden suite compares those; a live test that only did that must not pass as live. */
	if (!o.library && (t.compared == 0 || ((o.live || !o.golden_dir) && t.live_skipped)))
		return KD_EXIT_SKIP;
	return 0;
}
