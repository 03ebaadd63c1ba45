/*
 * smmu-kvmdiff's own tests: the scenario parser, the guest page-table builder against the
 * library's, records, the library backend and the comparator. None needs /dev/kvm.
 *
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <shadowmmu/shadowmmu.h>

#include "backend.h"
#include "gpt.h"
#include "hostmem.h"

static void parse_ok(const char *text, struct kd_scenario *sc)
{
	char err[512] = "";
	int r = kd_scenario_parse("t.scn", text, sc, err, sizeof(err));
	if (r)
		fail_msg("parse failed: %s", err);
}

/* @text must be refused with an error on @line that mentions @what. */
static void parse_bad(const char *text, int line, const char *what)
{
	struct kd_scenario sc;
	char err[512] = "", want[32];
	assert_int_equal(kd_scenario_parse("t.scn", text, &sc, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "t.scn:%d: ", line);
	if (strncmp(err, want, strlen(want)) || !strstr(err, what))
		fail_msg("error '%s' lacks '%s' or '%s'", err, want, what);
}

static void test_parse(void **state)
{
	(void)state;
	struct kd_scenario sc;
	parse_ok("# comment\nvcpus 2\nslot 3 0x2000000 2M log thp\nas a 16\nas b 16 at 0x2000000\n"
		 "map a 0x40000000 0x2000000 4 2m gstride 4M nx noa\ncr3 b vcpu 1\n"
		 "touch 0x40000000 8 4K write vcpu 1   # trailing comment\ngclear a 0x40000000 2\n"
		 "gpte a 0x40001000 0x2001000 ro\ninvalidate 3 4K 8K\ndirtylog 3\nflags 3 none\nmove 3 0x4000000\n"
		 "mmu_pages 100\ndelete 3\nmovcr3 a vcpu 1\n",
		 &sc);
	assert_int_equal(sc.nvcpus, 2);
	assert_int_equal(sc.nsteps, 16);
	assert_string_equal(sc.name, "t");
	const struct kd_step *st = &sc.steps[1];
	assert_int_equal(st->op, KD_SLOT);
	assert_int_equal(st->id, 3);
	assert_int_equal(st->a, 0x2000000);
	assert_int_equal(st->b, 2u << 20);
	assert_true(st->log && st->thp && !st->ro);
	assert_int_equal(st->line, 3);
	assert_int_equal(sc.as[0].pool_gpa, KD_POOL_BASE);
	assert_int_equal(sc.as[1].pool_gpa, 0x2000000);
	st = &sc.steps[4];
	assert_int_equal(st->op, KD_MAP);
	assert_true(st->large && st->nx && st->noa && !st->ro);
	assert_int_equal(st->gstride, 4u << 20);
	assert_int_equal(st->c, 0x2000000);
	st = &sc.steps[6];
	assert_int_equal(st->op, KD_TOUCH);
	assert_true(st->write);
	assert_int_equal(st->vcpu, 1);
	assert_int_equal(st->c, 4096);
	assert_string_equal(st->text, "touch 0x40000000 8 4K write vcpu 1");
	assert_int_equal(sc.steps[7].level, 2);
	assert_int_equal(sc.steps[7].bytes, 8); /* a whole entry unless said */
	assert_int_equal(sc.steps[7].offset, 0);
	assert_true(sc.steps[8].ro);
	st = &sc.steps[15];
	assert_int_equal(st->op, KD_MOVCR3);
	assert_int_equal(st->id, 0);
	assert_int_equal(st->vcpu, 1);
	assert_true(kd_step_runs_guest(st));
	kd_scenario_free(&sc);
	parse_ok("as a 16\ngclear a 0x40000000 2 bytes 2 offset 6\ngpte a 0x40001000 0x2001000 offset 4\n", &sc);
	assert_int_equal(sc.steps[1].bytes, 2);
	assert_int_equal(sc.steps[1].offset, 6);
	assert_int_equal(sc.steps[2].bytes, 8);
	assert_int_equal(sc.steps[2].offset, 4);
	kd_scenario_free(&sc);

	parse_bad("slot 1 0x2000000 4K\nfrob 1\n", 2, "unknown step 'frob'");
	parse_bad("slot 1 0x2000000\n", 1, "expected at least 3 arguments");
	parse_bad("slot 1 0x2000000 4K\nslot 2 0x2000000 8K\n", 2, "overlaps slot 1");
	parse_bad("slot 1 0x1000 4K\n", 1, "system area");
	parse_bad("as a 16\ntouch 0x40000000 1 0 read vcpu 1\n", 2, "vcpu 1 but the scenario has 1");
	parse_bad("slot 1 0x2000000 4K\ndirtylog 1\n", 2, "does not log dirty pages");
	parse_bad("delete 4\n", 1, "slot 4 does not exist");
	parse_bad("slot 1 0x2000000 4K\nvcpus 2\n", 2, "must be the first step");
	parse_bad("touch 0x1000 1 0 read\n", 1, "clear of the low 2 MiB");
	parse_bad("map x 0x40000000 0x2000000 1\n", 1, "unknown address space 'x'");
	parse_bad("slot 1 0x2000000 12Q\n", 1, "is not a number");
	parse_bad("\n# nothing\n", 0, "no steps");
	parse_bad("mmu_pages 63\n", 1, "KVM refuses fewer than 64");
	parse_bad("slot 1 0x2000000 64K ro\nas a 8 at 0x2000000\n", 2, "inside one writable slot");
	parse_bad("slot 1 0x2000000 64K\nas a 32 at 0x2000000\n", 2, "inside one writable slot");
	parse_bad("as a 16\ngclear a 0x40000000 2 bytes 3\n", 2, "bytes 1, 2, 4 or 8");
	parse_bad("as a 16\ngpte a 0x40001000 0x2001000 offset 8\n", 2, "offset 0..7");
	parse_bad("as a 16\ntouch 0x40000000 1 0 read bytes 4\n", 2, "unexpected 'bytes'");
}

/* ---- the builder makes the bytes smmu_gas_map makes ---------------------------------------- */

static int vm_read(void *ctx, uint64_t gpa, uint64_t *v) { return smmu_guest_read_u64(ctx, gpa, v); }
static int vm_write(void *ctx, uint64_t gpa, uint64_t v) { return smmu_guest_write_u64(ctx, gpa, v); }
static int vm_zero(void *ctx, uint64_t gpa)
{
	static const uint8_t z[4096];
	return smmu_guest_write(ctx, gpa, z, sizeof(z));
}
/* smmu_gas_map, then the Accessed bit cleared where the harness asks for it. */
static smmu_vm *gas_vm;
static int gas_map(void *ctx, uint64_t gva, uint64_t gfn, int level, uint32_t prot)
{
	int r = smmu_gas_map(ctx, gva, gfn, level, prot & ~KD_PROT_NOACCESSED);
	struct smmu_guest_walk w;
	if (r || !(prot & KD_PROT_NOACCESSED))
		return r;
	if ((r = smmu_guest_walk(gas_vm, smmu_gas_cr3(ctx), gva, &w)))
		return r;
	uint64_t a = (w.table_gfn[level - 1] << 12) + ((gva >> (12 + 9 * (level - 1))) & 511) * 8;
	return smmu_guest_write_u64(gas_vm, a, w.pte & ~SMMU_PTE_ACCESSED);
}
static int gpt_map(void *ctx, uint64_t gva, uint64_t gfn, int level, uint32_t prot)
{
	return kd_gpt_map(ctx, gva, gfn, level, prot);
}

static void test_gpt_matches_library(void **state)
{
	(void)state;
	struct kd_scenario sc;
	parse_ok("as a 40\nmap a 0x40000000 0x2000000 700 gstride 8K\nmap a 0x80000000 0x4000000 3 2m ro nx noa\n"
		 "map a 0x7f0000000000 0x3000000 5 gstride 1G\n",
		 &sc);
	smmu_vm *lib, *mine;
	assert_int_equal(smmu_vm_create(NULL, &lib), 0);
	assert_int_equal(smmu_vm_create(NULL, &mine), 0);
	assert_int_equal(smmu_memslot_create(lib, 1, 0, KD_SYS_BYTES >> 12, 0), 0);
	assert_int_equal(smmu_memslot_create(mine, 1, 0, KD_SYS_BYTES >> 12, 0), 0);
	smmu_gas *gas;
	gas_vm = lib;
	assert_int_equal(smmu_gas_create(lib, sc.as[0].pool_gpa >> 12, sc.as[0].pool_pages, &gas), 0);
	struct kd_gpt g;
	struct kd_mem mem = { mine, vm_read, vm_write, vm_zero };
	assert_int_equal(kd_gpt_init(&g, &mem, sc.as[0].pool_gpa >> 12, sc.as[0].pool_pages), 0);
	assert_int_equal(kd_layout_as(&sc.as[0], gas_map, gas), 0);
	assert_int_equal(kd_layout_as(&sc.as[0], gpt_map, &g), 0);
	for (size_t i = 1; i < sc.nsteps; i++) {
		assert_int_equal(kd_layout_map(&sc.steps[i], gas_map, gas), 0);
		assert_int_equal(kd_layout_map(&sc.steps[i], gpt_map, &g), 0);
	}
	/* Every frame of the pool holds the same bytes, and both walks agree. */
	size_t len = sc.as[0].pool_pages * 4096;
	uint8_t *a = malloc(len), *b = malloc(len);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(smmu_guest_read(lib, sc.as[0].pool_gpa, a, len), 0);
	assert_int_equal(smmu_guest_read(mine, sc.as[0].pool_gpa, b, len), 0);
	for (size_t off = 0; off < len; off += 8)
		if (memcmp(a + off, b + off, 8))
			fail_msg("pool differs at gpa %#llx", (unsigned long long)(sc.as[0].pool_gpa + off));
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(mine, smmu_gas_cr3(gas), 0x80200000, &w), 0);
	assert_int_equal(w.level, 2);
	assert_int_equal(w.gfn, (0x4000000 + (2u << 20)) >> 12);
	assert_false(w.access & SMMU_ACC_WRITE);
	assert_false(w.pte & SMMU_PTE_ACCESSED); /* noa */
	assert_int_equal(smmu_guest_walk(mine, smmu_gas_cr3(gas), 0x40002000, &w), 0);
	assert_true(w.pte & SMMU_PTE_ACCESSED); /* the library's shape by default */
	assert_int_equal(smmu_guest_walk(mine, smmu_gas_cr3(gas), KD_CODE_GPA, &w), 0);
	assert_false(w.pte & SMMU_PTE_ACCESSED); /* the harness's own pages: never prefetched */
	/* The entry a guest store targets lies in the pool, seen through the window. */
	uint64_t gva, val;
	struct kd_step clr = { .op = KD_GCLEAR, .a = 0x40002000, .level = 1 };
	assert_int_equal(kd_guest_store(&g, &sc.as[0], &clr, &gva, &val), 0);
	assert_int_equal(val, 0);
	assert_int_equal(smmu_guest_walk(mine, smmu_gas_cr3(gas), gva, &w), 0);
	assert_int_equal(w.gfn << 12, (smmu_gfn_t)(sc.as[0].pool_gpa + (gva - KD_PTWIN)) & ~4095ull);
	free(a);
	free(b);
	smmu_gas_destroy(gas);
	smmu_vm_destroy(lib);
	smmu_vm_destroy(mine);
	kd_scenario_free(&sc);
}

/* ---- the library backend -------------------------------------------------------------------- */

static void run_lib(const char *text, struct kd_record *rec)
{
	struct kd_scenario sc;
	char err[1024] = "";
	parse_ok(text, &sc);
	if (kd_lib_run(&sc, NULL, rec, true, err, sizeof(err)))
		fail_msg("library run failed: %s", err);
	kd_scenario_free(&sc);
}

/* Index in s->ev of the @i-th event of @kind (fails the test when there is none). */
static size_t nth_index(const struct kd_rstep *s, char kind, size_t i)
{
	for (size_t e = 0; e < s->nev; e++)
		if (s->ev[e].kind == kind && i-- == 0)
			return e;
	fail_msg("no event %c #%zu", kind, i);
	return 0;
}

static size_t count(const struct kd_rstep *s, char kind)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nev; i++)
		n += s->ev[i].kind == kind;
	return n;
}

/* One guest table per page at 2 MiB strides: KVM's shape, page for page. */
static void test_lib_one_table_per_page(void **state)
{
	(void)state;
	struct kd_record r;
	run_lib("slot 1 0x2000000 64M\nas a 128\nmap a 0x40000000 0x2000000 64 gstride 2M\ncr3 a\n"
		"touch 0x40000000 64 2M read\ndelete 1\n",
		&r);
	assert_int_equal(r.nsteps, 6);
	const struct kd_rstep *t = &r.steps[4];
	/* root, PDPT, the low PD and PT (program, mailbox), the data PD, 64 data PTs */
	assert_int_equal(t->ctr[KD_C_MMU_CACHE_MISS], 69);
	assert_int_equal(count(t, 'c'), 69);
	assert_int_equal(t->ctr[KD_C_PF_FIXED], 66); /* fetch, mailbox, 64 data pages */
	assert_int_equal(t->ctr[KD_C_PAGES_4K], 66);
	assert_true(t->have[KD_C_MMU_UNSYNC]); /* recorded now: reads make nothing unsync */
	assert_int_equal(t->ctr[KD_C_MMU_UNSYNC], 0);
	assert_true(t->have[KD_C_MMU_FLOODED]); /* recorded now: no trapped write yet */
	assert_int_equal(t->ctr[KD_C_MMU_FLOODED], 0);
	const struct kd_ev *first = &t->ev[nth_index(t, 'c', 0)];
	assert_int_equal(first->level, 4);
	assert_int_equal(first->gfn, KD_POOL_BASE >> 12); /* the root shadows CR3 */
	assert_false(first->direct);
	/* The first walk is the program's fetch: user, fetch, not present. */
	const struct kd_ev *walk = &t->ev[nth_index(t, 'f', 0)];
	assert_int_equal(walk->gfn, KD_CODE_GPA);
	assert_int_equal(walk->pferr, 4 | 16);
	assert_int_equal(count(t, 'f'), 66);
	/* Deleting the data slot zaps every page (today's fast zap of all). */
	assert_int_equal(r.steps[5].ctr[KD_C_MMU_SHADOW_ZAPPED], 69);
	assert_int_equal(count(&r.steps[5], 'z'), 69);
	assert_int_equal(r.steps[5].ctr[KD_C_PAGES_4K], 0);
	kd_record_free(&r);
}

/* A host write to a table the MMU already shadows is refused, not silently trapped. */
static void test_lib_refuses_host_write_to_shadowed_table(void **state)
{
	(void)state;
	struct kd_scenario sc;
	struct kd_record r;
	char err[1024] = "";
	parse_ok("slot 1 0x2000000 4M\nas a 64\nmap a 0x40000000 0x2000000 4\ncr3 a\ntouch 0x40000000 4 4K read\n"
		 "map a 0x40004000 0x2004000 1\n",
		 &sc);
	assert_int_equal(kd_lib_run(&sc, NULL, &r, true, err, sizeof(err)), -1);
	if (!strstr(err, "t.scn:6: map:") || !strstr(err, "already shadowed"))
		fail_msg("unexpected error: %s", err);
	kd_scenario_free(&sc);
}

/* A narrow or offset store must end inside the table: the last entry's 8 bytes at +4 do not. */
static void test_lib_store_past_table_end(void **state)
{
	(void)state;
	struct kd_scenario sc;
	struct kd_record r;
	char err[1024] = "";
	parse_ok("slot 1 0x2000000 4M\nas a 64\nmap a 0x7fe00000 0x2000000 1\ncr3 a\ntouch 0x7fe00000 1 4K read\n"
		 "gclear a 0x7fe00000 2 offset 4\n",
		 &sc);
	assert_int_equal(kd_lib_run(&sc, NULL, &r, true, err, sizeof(err)), -1);
	if (!strstr(err, "t.scn:6: gclear:") || !strstr(err, "runs past the table's end"))
		fail_msg("unexpected error: %s", err);
	kd_scenario_free(&sc);
}

static void test_lib_guest_pte_write_is_trapped(void **state)
{
	(void)state;
	struct kd_record r;
	run_lib("slot 1 0x2000000 64M\nas a 64\nmap a 0x40000000 0x2000000 4 gstride 2M\ncr3 a\n"
		"touch 0x40000000 4 2M read\ngclear a 0x40200000 2\n",
		&r);
	/* The store reaches a shadowed page directory: emulated, one mmu_pte_write at least. */
	assert_true(r.steps[5].ctr[KD_C_MMU_PTE_WRITE] > r.steps[4].ctr[KD_C_MMU_PTE_WRITE]);
	/* Dropping the link to the page table keeps that table's leaves (until the page is zapped);
	 * the new leaves map the window page the store went through (pool frame 6, the directory)
	 * and, by pte prefetch, the other 7 of its group: pool frames 0-7 all hold tables the host
	 * wrote, and the window's ptes are Accessed. Linux 6.1 does the same (gpte_trapped's
	 * record: pages_4k +8 at the first gclear). */
	assert_int_equal(r.steps[5].ctr[KD_C_PAGES_4K], r.steps[4].ctr[KD_C_PAGES_4K] + 8);
	kd_record_free(&r);
}

/* ---- records and the comparator ------------------------------------------------------------- */

static char *compare_out(const struct kd_record *a, const struct kd_record *b, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	*rc = kd_compare(f, a, b);
	fclose(f);
	return buf;
}

static void expect_divergence(const struct kd_record *a, const struct kd_record *b, size_t step, const char *what)
{
	int rc;
	char *out = compare_out(a, b, &rc), want[64];
	snprintf(want, sizeof(want), "first divergence at step %zu: ", step);
	if (rc != 1 || !strstr(out, want) || !strstr(out, what))
		fail_msg("expected rc 1, '%s' and '%s'; got rc %d:\n%s", want, what, rc, out);
	free(out);
}

/* @a and @b must match, and the output mention @what (when not NULL). */
static void expect_match(const struct kd_record *a, const struct kd_record *b, const char *what)
{
	int rc;
	char *out = compare_out(a, b, &rc);
	if (rc != 0 || (what && !strstr(out, what)))
		fail_msg("expected a match mentioning '%s'; got rc %d:\n%s", what ? what : "", rc, out);
	free(out);
}

static void record_copy(struct kd_record *dst, const struct kd_record *src)
{
	char path[] = "/tmp/kvmdiff-test-XXXXXX", err[512];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(kd_record_save(path, src), 0);
	if (kd_record_load(path, dst, err, sizeof(err)))
		fail_msg("%s", err);
	unlink(path);
}

static const char *seed = "slot 1 0x2000000 256M\nas a 1100\nmap a 0x40000000 0x2000000 300 gstride 2M\n"
			  "cr3 a\ntouch 0x40000000 300 2M read\ndelete 1\n";

/* The library's record of the seed scenario (r) and a copy read back from its file (c). */
struct pair {
	struct kd_record r, c;
};

static int pair_setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	run_lib(seed, &p->r);
	record_copy(&p->c, &p->r);
	*state = p;
	return 0;
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;
	kd_record_free(&p->r);
	kd_record_free(&p->c);
	free(p);
	return 0;
}

/* The host pages model: a read maps the zero page, the first write copies it (a 4 KiB
 * invalidation), a write to the huge zero page splits it, a first write allocates a THP. */
static void test_hostmem(void **state)
{
	(void)state;
	const uintptr_t base = (uintptr_t)1 << 30; /* any 2 MiB-aligned address: nothing is mapped */
	struct kd_hostmem h;
	uintptr_t s, e;
	assert_int_equal(kd_hostmem_init(&h, (void *)base, 2048, false, false), 0);
	assert_false(kd_hostmem_access(&h, base + 0x5000, false, &s, &e)); /* zero page */
	assert_true(kd_hostmem_access(&h, base + 0x5008, true, &s, &e));   /* copied */
	assert_true(s == base + 0x5000 && e == base + 0x6000);
	assert_false(kd_hostmem_access(&h, base + 0x5000, true, &s, &e));  /* written already */
	assert_false(kd_hostmem_access(&h, base + 0x7000, true, &s, &e));  /* first touch a write */
	kd_hostmem_dontneed(&h, base + 0x5000, 0x1000);
	assert_false(kd_hostmem_access(&h, base + 0x5000, false, &s, &e));
	assert_true(kd_hostmem_access(&h, base + 0x5000, true, &s, &e));
	kd_hostmem_free(&h);

	assert_int_equal(kd_hostmem_init(&h, (void *)base, 2048, true, false), 0);
	assert_false(kd_hostmem_access(&h, base + 0x3000, false, &s, &e)); /* huge zero page */
	assert_true(kd_hostmem_access(&h, base + 0x10000, true, &s, &e));  /* split, copied */
	assert_true(s == base + 0x10000 && e == base + 0x11000);
	assert_true(kd_hostmem_access(&h, base + 0x3000, true, &s, &e));   /* a 4 KiB zero page now */
	assert_false(kd_hostmem_access(&h, base + (2u << 20), true, &s, &e)); /* a THP allocated */
	assert_false(kd_hostmem_access(&h, base + (2u << 20) + 0x1000, true, &s, &e));
	kd_hostmem_dontneed(&h, base + (2u << 20) + 0x1000, 0x1000);       /* split, one page freed */
	assert_false(kd_hostmem_access(&h, base + (2u << 20) + 0x2000, true, &s, &e));
	assert_false(kd_hostmem_access(&h, base + (2u << 20) + 0x1000, false, &s, &e));
	assert_true(kd_hostmem_access(&h, base + (2u << 20) + 0x1000, true, &s, &e));
	kd_hostmem_free(&h);
}

/* From 6.13 a write to the huge zero page allocates a THP: the whole 2 MiB is invalidated and
 * the host keeps its huge page (no split). */
static void test_hostmem_thp_write_allocates(void **state)
{
	(void)state;
	const uintptr_t base = (uintptr_t)1 << 30;
	struct kd_hostmem h;
	uintptr_t s, e;
	assert_int_equal(kd_hostmem_init(&h, (void *)base, 2048, true, true), 0);
	assert_false(kd_hostmem_access(&h, base + 0x3000, false, &s, &e)); /* huge zero page */
	assert_true(kd_hostmem_access(&h, base + 0x10000, true, &s, &e));  /* a THP instead */
	assert_true(s == base && e == base + (2u << 20));
	assert_false(kd_hostmem_access(&h, base + 0x3000, true, &s, &e));  /* no 4 KiB zero page */
	kd_hostmem_free(&h);
}

/* Which profile and host a record's kernel gets. */
static void test_target_for_kernel(void **state)
{
	(void)state;
	static const struct {
		const char *rel;
		int profile;
		bool thp_alloc;
	} cases[] = {
		{ "6.1.0-57-amd64", SMMU_PROFILE_LINUX_6_1, false },
		{ "6.3.9", SMMU_PROFILE_LINUX_6_1, false },
		{ "6.4.0", SMMU_PROFILE_LINUX_TODAY, false },
		{ "6.12.117+deb13-amd64", SMMU_PROFILE_LINUX_TODAY, false },
		{ "6.18.15+deb13-amd64", SMMU_PROFILE_LINUX_TODAY, true },
		{ "7.2.12+deb13-amd64", SMMU_PROFILE_LINUX_TODAY, true },
		{ "", SMMU_PROFILE_LINUX_TODAY, true },
		{ NULL, SMMU_PROFILE_LINUX_TODAY, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kd_target t;
		kd_target_for_kernel(cases[i].rel, &t);
		assert_int_equal(t.profile, cases[i].profile);
		assert_int_equal(t.thp_write_allocates, cases[i].thp_alloc);
		assert_string_equal(t.kernel, cases[i].rel ? cases[i].rel : "");
	}
}

static void test_record_round_trip_and_self_match(void **state)
{
	struct pair *p = *state;
	struct kd_record r = p->r, c = p->c;
	assert_string_equal(c.source, "library");
	assert_string_equal(c.scenario, "t");
	assert_true(c.events);
	assert_int_equal(c.nsteps, r.nsteps);
	for (size_t i = 0; i < r.nsteps; i++) {
		assert_int_equal(c.steps[i].nev, r.steps[i].nev);
		assert_memory_equal(c.steps[i].ctr, r.steps[i].ctr, sizeof(r.steps[i].ctr));
		assert_memory_equal(c.steps[i].have, r.steps[i].have, sizeof(r.steps[i].have));
		assert_string_equal(c.steps[i].text, r.steps[i].text);
	}
	expect_match(&r, &c, "match: 6 steps");
	expect_match(&r, &c, "ratio");
	p->c = c;
}

static void test_compare_counter_changed(void **state)
{
	struct pair *p = *state;
	struct kd_record r = p->r, c = p->c;
	c.steps[4].ctr[KD_C_PF_FIXED]++;
	expect_divergence(&r, &c, 5, "pf_fixed");
	/* A counter that one side lacks is not compared. */
	c.steps[4].have[KD_C_PF_FIXED] = false;
	expect_match(&r, &c, NULL);
	p->c = c;
}

static void test_compare_created_page_removed(void **state)
{
	struct pair *p = *state;
	struct kd_record r = p->r, c = p->c;
	struct kd_rstep *s = &c.steps[4];
	assert_true(s->nev > 10);
	size_t at = nth_index(s, 'c', 7);
	memmove(&s->ev[at], &s->ev[at + 1], (s->nev - at - 1) * sizeof(s->ev[0]));
	s->nev--;
	expect_divergence(&r, &c, 5, "created pages: kernel 305, library 304; first difference at #8");
	p->c = c;
}

static void test_compare_zap_order_swapped(void **state)
{
	struct pair *p = *state;
	struct kd_record r = p->r, c = p->c;
	struct kd_rstep *s = &c.steps[5];
	size_t x = nth_index(s, 'z', 10), y = nth_index(s, 'z', 11);
	assert_true(s->ev[x].gfn != s->ev[y].gfn);
	struct kd_ev t = s->ev[x];
	s->ev[x] = s->ev[y];
	s->ev[y] = t;
	expect_divergence(&r, &c, 6, "zapped pages: kernel 305, library 305; first difference at #11");
	/* Without sequences on one side, the comparison says so and compares the counters only. */
	c.events = false;
	expect_match(&r, &c, "sequences NOT compared");
	p->c = c;
}

static void test_compare_missing_step(void **state)
{
	struct pair *p = *state;
	struct kd_record r = p->r, c = p->c;
	free(c.steps[5].ev);
	c.nsteps = 5;
	expect_divergence(&r, &c, 6, "ends before it");
	p->c = c;
}

static void test_record_load_errors(void **state)
{
	(void)state;
	struct kd_record r;
	char err[512], path[] = "/tmp/kvmdiff-test-XXXXXX";
	assert_int_equal(kd_record_load("/nonexistent/x.rec", &r, err, sizeof(err)), -2);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *bad = "smmu-kvmdiff record 1\nsource kernel\nstep 1 3 touch\nctr pf_fixed 12x\nend\n";
	assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
	close(fd);
	assert_int_equal(kd_record_load(path, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":4: ctr: value is not a number"));
	unlink(path);
}

/* ---- the kernel backend's parsers ---------------------------------------------------------- */

/* A stats file laid out as api.rst describes KVM_GET_STATS_FD's. */
static void test_stats_parse(void **state)
{
	(void)state;
	enum { NAME = 48, N = 3 };
	static const char *const names[N] = { "mmu_cache_miss", "pages_4k", "pf_fixed" };
	size_t dsize = sizeof(struct kvm_stats_desc) + NAME;
	struct kvm_stats_header h = { .name_size = NAME, .num_desc = N, .id_offset = sizeof(h) };
	h.desc_offset = h.id_offset + NAME;
	h.data_offset = h.desc_offset + (uint32_t)(N * dsize);
	char path[] = "/tmp/kvmdiff-stats-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	assert_int_equal(pwrite(fd, "kvm-4242", 9, h.id_offset), 9);
	for (int i = 0; i < N; i++) {
		char d[sizeof(struct kvm_stats_desc) + NAME];
		memset(d, 0, sizeof(d));
		struct kvm_stats_desc *k = (void *)d;
		k->flags = KVM_STATS_TYPE_CUMULATIVE;
		k->size = 1;
		k->offset = (uint32_t)(8 * (N - 1 - i)); /* data not in descriptor order */
		snprintf(k->name, NAME, "%s", names[i]);
		assert_int_equal(pwrite(fd, d, dsize, h.desc_offset + i * dsize), (ssize_t)dsize);
	}
	uint64_t data[N] = { 5, 1001, 1007 }; /* pf_fixed, pages_4k, mmu_cache_miss */
	assert_int_equal(pwrite(fd, data, sizeof(data), h.data_offset), (ssize_t)sizeof(data));
	struct kd_stats st;
	assert_int_equal(kd_stats_load(&st, fd), 0);
	assert_int_equal(kd_stats_read(&st), 0);
	uint64_t v = 0;
	assert_true(kd_stats_get(&st, "mmu_cache_miss", &v));
	assert_int_equal(v, 1007);
	assert_true(kd_stats_get(&st, "pages_4k", &v));
	assert_int_equal(v, 1001);
	assert_true(kd_stats_get(&st, "pf_fixed", &v));
	assert_int_equal(v, 5);
	assert_false(kd_stats_get(&st, "mmu_unsync", &v));
	data[2] = 1100; /* the values change; the layout does not */
	assert_int_equal(pwrite(fd, data, sizeof(data), h.data_offset), (ssize_t)sizeof(data));
	assert_int_equal(kd_stats_read(&st), 0);
	assert_true(kd_stats_get(&st, "mmu_cache_miss", &v));
	assert_int_equal(v, 1100);
	kd_stats_close(&st);
}

/* Lines as kvmmmu's TP_printk formats them (arch/x86/kvm/mmu/mmutrace.h). */
static void test_trace_lines(void **state)
{
	(void)state;
	struct kd_ev ev;
	assert_int_equal(kd_trace_line(" smmu-kvmdiff-4242 [001] ..... 12.345678: kvm_mmu_get_page: sp gen 0 "
				       "gfn 200 l4 8-byte q0 wux !nxe ad root 0 sync new\n", &ev), 1);
	assert_int_equal(ev.kind, 'c');
	assert_int_equal(ev.level, 4);
	assert_int_equal(ev.gfn, 0x200);
	assert_false(ev.direct);
	assert_int_equal(kd_trace_line(" smmu-kvmdiff-4242 [001] ..... 12.345679: kvm_mmu_get_page: sp gen 0 "
				       "gfn 10200 l1 8-byte q0 direct wux nxe ad root 0 sync new\n", &ev), 1);
	assert_true(ev.direct);
	assert_int_equal(ev.level, 1);
	assert_int_equal(ev.gfn, 0x10200);
	assert_int_equal(kd_trace_line(" smmu-kvmdiff-4242 [001] ..... 12.3457: kvm_mmu_get_page: sp gen 0 "
				       "gfn 200 l4 8-byte q0 wux !nxe ad root 1 sync existing\n", &ev), 0);
	assert_int_equal(kd_trace_line(" smmu-kvmdiff-4242 [000] ..... 13.0: kvm_mmu_prepare_zap_page: sp gen 1 "
				       "gfn 2ab l3 8-byte q0 wux !nxe ad root 0 sync\n", &ev), 1);
	assert_int_equal(ev.kind, 'z');
	assert_int_equal(ev.level, 3);
	assert_int_equal(ev.gfn, 0x2ab);
	assert_int_equal(kd_trace_line(" smmu-kvmdiff-4242 [000] ..... 13.1: tracing_mark_write: smmu-kvmdiff "
				       "step 3 line 5: delete 1\n", &ev), 0);
	assert_int_equal(kd_trace_line(" smmu-kvmdiff-4242 [000] ..... 13.2: kvm_mmu_pagetable_walk: addr "
				       "40001000 pferr 7 P|W|U\n", &ev), 1);
	assert_int_equal(ev.kind, 'f');
	assert_int_equal(ev.gfn, 0x40001000);
	assert_int_equal(ev.pferr, 7);
}

/* Here the kernel backend either works or says why not; it never passes silently. */
static void test_kvm_probe_says_why(void **state)
{
	(void)state;
	char why[1024];
	int r = kd_kvm_probe(why, sizeof(why));
	assert_true(r == 0 || r == KD_EXIT_SKIP);
	if (r == KD_EXIT_SKIP) {
		assert_true(strstr(why, "/dev/kvm") || strstr(why, "TDP") || strstr(why, "KVM_"));
		struct kd_scenario sc;
		struct kd_record rec;
		char err[1024];
		parse_ok("as a 16\n", &sc);
		assert_int_equal(kd_kvm_run(&sc, &rec, err, sizeof(err)), KD_EXIT_SKIP);
		assert_string_equal(err, why);
		kd_scenario_free(&sc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_gpt_matches_library),
		cmocka_unit_test(test_lib_one_table_per_page),
		cmocka_unit_test(test_lib_refuses_host_write_to_shadowed_table),
		cmocka_unit_test(test_lib_store_past_table_end),
		cmocka_unit_test(test_lib_guest_pte_write_is_trapped),
		cmocka_unit_test(test_hostmem),
		cmocka_unit_test(test_hostmem_thp_write_allocates),
		cmocka_unit_test(test_target_for_kernel),
		cmocka_unit_test_setup_teardown(test_record_round_trip_and_self_match, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_compare_counter_changed, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_compare_created_page_removed, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_compare_zap_order_swapped, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_compare_missing_step, pair_setup, pair_teardown),
		cmocka_unit_test(test_record_load_errors),
		cmocka_unit_test(test_stats_parse),
		cmocka_unit_test(test_trace_lines),
		cmocka_unit_test(test_kvm_probe_says_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
