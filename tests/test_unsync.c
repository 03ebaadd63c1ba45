/*
 * Unsync shadow pages (unsync.c): a guest write to a level-1 table it maps writable unsyncs the
 * page instead of being trapped; the page is synced at a root load and at INVLPG, zapped with
 * its parent; the eras' rules where they differ; and the audit's checks of it, broken on purpose.
 *
 * SPDX-License-Identifier: MIT
 */
#include "testlib.h"

#include <errno.h>
#include <string.h>

#include "mmu.h"

#define POOL_GFN 16
#define POOL_PAGES 64
#define DATA_GVA 0x40000000ull               /* level-1 index 0 */
#define PT_GVA (DATA_GVA + (2ull << 20))     /* another 2 MiB region: another level-1 page */
#define RW_USER (SMMU_PROT_WRITE | SMMU_PROT_USER)
#define DATA_GFN 200
#define NEW_GFN 300

static uint64_t gpte(smmu_gfn_t gfn)
{
	return (gfn << SMMU_PAGE_SHIFT) | SMMU_PTE_PRESENT | SMMU_PTE_WRITABLE | SMMU_PTE_USER |
	       SMMU_PTE_ACCESSED | SMMU_PTE_DIRTY;
}

static uint64_t unsync_now(smmu_vm *vm)
{
	uint64_t n = ~0ull;
	assert_int_equal(smmu_vm_get_mmu_unsync(vm, &n), 0);
	return n;
}

static struct smmu_vm_counters counters(smmu_vm *vm)
{
	struct smmu_vm_counters c;
	assert_int_equal(smmu_vm_get_counters(vm, &c), 0);
	return c;
}

/* The page of @gfn at @level (current, valid), or NULL. */
static struct smmu_sp *find_sp(smmu_vm *vm, smmu_gfn_t gfn, int level)
{
	for (struct list_node *n = vm->active_mmu_pages.next; n != &vm->active_mmu_pages; n = n->next) {
		struct smmu_sp *sp = container_of(n, struct smmu_sp, link);
		if (sp->gfn == gfn && (int)sp->role.level == level && !sp->role.direct && !sp->role.invalid)
			return sp;
	}
	return NULL;
}

struct fix {
	struct tl_guest g;
	smmu_gfn_t l1, l2; /* data's level-1 and level-2 guest tables */
};

/* data mapped and read; its level-1 table mapped writable at PT_GVA, in another region. */
static void setup(struct fix *f, enum smmu_profile profile)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	tl_guest_init_cfg(&f->g, &cfg, 4096, POOL_GFN, POOL_PAGES);
	assert_int_equal(smmu_gas_map(f->g.gas, DATA_GVA, DATA_GFN, SMMU_LEVEL_4K, RW_USER), 0);
	uint64_t v;
	assert_int_equal(smmu_vcpu_read(f->g.vcpu, DATA_GVA, &v, sizeof(v)), 0);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(f->g.vm, smmu_gas_cr3(f->g.gas), DATA_GVA, &w), 0);
	f->l1 = w.table_gfn[0];
	f->l2 = w.table_gfn[1];
	assert_int_equal(smmu_gas_map(f->g.gas, PT_GVA, f->l1, SMMU_LEVEL_4K, RW_USER), 0);
	assert_non_null(find_sp(f->g.vm, f->l1, SMMU_LEVEL_4K));
	assert_int_equal(unsync_now(f->g.vm), 0);
}

/* The guest rewrites data's pte through PT_GVA to map NEW_GFN. */
static void guest_rewrites_data_pte(struct fix *f, uint64_t pte)
{
	assert_int_equal(smmu_vcpu_write(f->g.vcpu, PT_GVA + PT64_INDEX(DATA_GVA, 1) * 8, &pte, sizeof(pte)), 0);
}

static void *data_hva(struct fix *f)
{
	struct smmu_translation t;
	int r = smmu_vcpu_translate(f->g.vcpu, DATA_GVA, 0, &t);
	return r ? NULL : t.hva;
}

/* ---- unsync on write, no trap --------------------------------------------------------------- */

static void check_write_unsyncs(enum smmu_profile profile)
{
	struct fix f;
	setup(&f, profile);
	struct smmu_vm_counters c0 = counters(f.g.vm);
	guest_rewrites_data_pte(&f, gpte(NEW_GFN));
	struct smmu_vm_counters c1 = counters(f.g.vm);
	assert_int_equal(unsync_now(f.g.vm), 1);
	struct smmu_sp *sp = find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K);
	assert_non_null(sp);
	assert_true(sp->unsync);
	struct smmu_sp_info info;
	vm_lock(f.g.vm, SMMU_SITE_AUDIT);
	assert_int_equal(smmu_sp_get_info(f.g.vm, sp, &info), 0);
	vm_unlock(f.g.vm);
	assert_true(info.unsync); /* what smmu_inspect_slot_pages() reports too */
	/* Not trapped: no kvm_mmu_pte_write, and the table's spte is writable. */
	assert_int_equal(c1.pte_writes, c0.pte_writes);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(f.g.vcpu, PT_GVA, SMMU_ACC_WRITE, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(f.g.vm, f.l1));
	/* The guest table says NEW_GFN; the unsync page still maps DATA_GFN until synced. */
	uint64_t now;
	assert_int_equal(smmu_guest_read_u64(f.g.vm, (f.l1 << SMMU_PAGE_SHIFT), &now), 0);
	assert_int_equal(now, gpte(NEW_GFN));
	assert_ptr_equal(data_hva(&f), smmu_gfn_to_hva(f.g.vm, DATA_GFN));
	/* Its parent (the level-2 page of l2) carries its unsync_child bit. */
	struct smmu_sp *parent = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
	assert_non_null(parent);
	assert_true(parent->unsync_children >= 1);
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_write_unsyncs_3_11(void **state)
{
	(void)state;
	check_write_unsyncs(SMMU_PROFILE_LINUX_3_11);
}

static void test_write_unsyncs_today(void **state)
{
	(void)state;
	check_write_unsyncs(SMMU_PROFILE_LINUX_TODAY);
}

/* ---- sync on CR3 load ------------------------------------------------------------------------ */

/* The sync drops data's spte (its gfn changed), write-protects the table again, and then the
 * page has no spte left: 3.11 zaps it (FNAME(sync_page) returns !nr_present), today keeps it. */
static void check_sync_on_cr3(enum smmu_profile profile, uint64_t zapped_by_sync)
{
	struct fix f;
	setup(&f, profile);
	guest_rewrites_data_pte(&f, gpte(NEW_GFN));
	assert_int_equal(unsync_now(f.g.vm), 1);
	struct smmu_vm_counters c0 = counters(f.g.vm);
	assert_int_equal(smmu_vcpu_set_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0);
	struct smmu_vm_counters c1 = counters(f.g.vm);
	assert_int_equal(unsync_now(f.g.vm), 0);
	assert_int_equal(c1.pages_zapped - c0.pages_zapped, zapped_by_sync);
	assert_null(data_hva(&f)); /* the stale spte is gone */
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(f.g.vcpu, PT_GVA, SMMU_ACC_WRITE, &t), -EACCES);
	tl_assert_audit_clean(f.g.vm);
	/* The next access maps what the guest table says now. */
	uint64_t v;
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, DATA_GVA, &v, sizeof(v)), 0);
	assert_ptr_equal(data_hva(&f), smmu_gfn_to_hva(f.g.vm, NEW_GFN));
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_sync_on_cr3_3_11(void **state)
{
	(void)state;
	check_sync_on_cr3(SMMU_PROFILE_LINUX_3_11, 1);
}

static void test_sync_on_cr3_today(void **state)
{
	(void)state;
	check_sync_on_cr3(SMMU_PROFILE_LINUX_TODAY, 0);
}

/* The guest's MOV CR3 to the CR3 it has keeps the root and asks for its sync at the next entry
 * (KVM_REQ_MMU_SYNC, which vcpu_enter_guest handles before the guest runs): the very next access,
 * with no smmu_vcpu_mmu_reload() first, reads what the guest table maps now, not the stale spte's
 * frame. (The fuzzer found the access walking the unsync page before the sync.) */
static void check_access_after_mov_cr3_syncs(enum smmu_profile profile)
{
	struct fix f;
	setup(&f, profile);
	assert_int_equal(smmu_guest_write_u64(f.g.vm, DATA_GFN << SMMU_PAGE_SHIFT, 0x1111), 0);
	assert_int_equal(smmu_guest_write_u64(f.g.vm, NEW_GFN << SMMU_PAGE_SHIFT, 0x2222), 0);
	guest_rewrites_data_pte(&f, gpte(NEW_GFN));
	uint64_t v = 0;
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, DATA_GVA, &v, sizeof(v)), 0);
	assert_int_equal(v, 0x1111); /* stale until the CR3 load: x86 allows it */
	assert_int_equal(smmu_vcpu_load_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
	assert_int_equal(unsync_now(f.g.vm), 1); /* synced at the entry, not by the load */
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, DATA_GVA, &v, sizeof(v)), 0);
	assert_int_equal(v, 0x2222);
	assert_int_equal(unsync_now(f.g.vm), 0);
	assert_ptr_equal(data_hva(&f), smmu_gfn_to_hva(f.g.vm, NEW_GFN));
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_access_after_mov_cr3_syncs_3_11(void **state)
{
	(void)state;
	check_access_after_mov_cr3_syncs(SMMU_PROFILE_LINUX_3_11);
}

static void test_access_after_mov_cr3_syncs_today(void **state)
{
	(void)state;
	check_access_after_mov_cr3_syncs(SMMU_PROFILE_LINUX_TODAY);
}

/* An MMIO spte in an unsync page whose gfn a new slot then covers: the sync marks it again with
 * the current generation (sync_mmio_spte, 3.11 and today: same gfn, so mark_mmio_spte), without
 * looking at the memslots, so a current MMIO spte maps a gfn of a slot. KVM leaves that too
 * (harmless there: the emulator finds the slot), so the audit accepts it for a spte a sync
 * marked in this generation. (The fuzzer found the audit rejecting it.) */
#define MMIO_GVA (DATA_GVA + 0x1000)
#define MMIO_GFN 5000
static void check_sync_remarks_mmio_over_new_slot(enum smmu_profile profile)
{
	struct fix f;
	setup(&f, profile);
	assert_int_equal(smmu_gas_map(f.g.gas, MMIO_GVA, MMIO_GFN, SMMU_LEVEL_4K, RW_USER), 0);
	uint64_t v;
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, MMIO_GVA, &v, sizeof(v)), -EFAULT); /* MMIO */
	struct smmu_mmio_counters m0;
	assert_int_equal(smmu_vm_get_mmio_counters(f.g.vm, &m0), 0);
	assert_int_equal(m0.sptes_now, 1);
	guest_rewrites_data_pte(&f, gpte(DATA_GFN)); /* unsyncs data's level-1 page */
	assert_int_equal(unsync_now(f.g.vm), 1);
	assert_int_equal(smmu_memslot_create(f.g.vm, 1, MMIO_GFN, 16, 0), 0);
	tl_assert_audit_clean(f.g.vm); /* the MMIO spte is of an older generation now */
	assert_int_equal(smmu_vcpu_load_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0);
	assert_int_equal(unsync_now(f.g.vm), 0);
	struct smmu_mmio_counters m1;
	assert_int_equal(smmu_vm_get_mmio_counters(f.g.vm, &m1), 0);
	assert_int_equal(m1.sptes_now, 1); /* kept, marked again */
	struct smmu_sp *sp = find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K);
	assert_non_null(sp);
	uint64_t spte = sp->spt[PT64_INDEX(MMIO_GVA, 1)];
	assert_true(is_mmio_spte(spte));
	assert_int_equal(get_mmio_spte_generation(spte), m1.mmio_generation);
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_sync_remarks_mmio_over_new_slot_3_11(void **state)
{
	(void)state;
	check_sync_remarks_mmio_over_new_slot(SMMU_PROFILE_LINUX_3_11);
}

static void test_sync_remarks_mmio_over_new_slot_today(void **state)
{
	(void)state;
	check_sync_remarks_mmio_over_new_slot(SMMU_PROFILE_LINUX_TODAY);
}

/* Another vCPU's TLB across a sync that drops an spte. 3.11's FNAME(sync_page) counts the drop in
 * kvm->tlbs_dirty and flushes only the syncing vCPU's TLB: the other keeps its entry (the guest
 * changed the pte without invalidating it there, which x86 allows), the audit accepts it while
 * tlbs_dirty is set, and the MMU notifier flushes because of it before the host frees the page.
 * Today's sync flushes every TLB itself. (The fuzzer found the audit rejecting 3.11's entry.) */
static uint64_t tlb_flushes(smmu_vcpu *v)
{
	struct smmu_vcpu_counters c;
	assert_int_equal(smmu_vcpu_get_counters(v, &c), 0);
	return c.tlb_flushes;
}

static void check_sync_drop_and_other_tlb(enum smmu_profile profile, uint64_t sync_flushes_other)
{
	struct fix f;
	setup(&f, profile);
	smmu_vcpu *other;
	assert_int_equal(smmu_vcpu_create(f.g.vm, &other), 0);
	assert_int_equal(smmu_vcpu_set_cr3(other, smmu_gas_cr3(f.g.gas)), 0);
	uint64_t v;
	/* A second spte in data's level-1 page: 3.11 would zap a page the sync left empty. */
	assert_int_equal(smmu_gas_map(f.g.gas, DATA_GVA + 0x2000, DATA_GFN + 1, SMMU_LEVEL_4K, RW_USER), 0);
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, DATA_GVA + 0x2000, &v, sizeof(v)), 0);
	assert_int_equal(smmu_vcpu_read(other, DATA_GVA, &v, sizeof(v)), 0); /* its TLB holds DATA_GVA */
	guest_rewrites_data_pte(&f, 0);                                       /* not present now */
	assert_int_equal(unsync_now(f.g.vm), 1);
	/* Dirty logging write-protects the slot (the table too, with a remote flush), so the sync
	 * finds nothing to protect and makes no flush for that (mmu_sync_children's 'protected');
	 * the other vCPU then reads through the unsync page's stale spte again. */
	assert_int_equal(smmu_memslot_set_flags(f.g.vm, 0, SMMU_MEM_LOG_DIRTY_PAGES), 0);
	assert_int_equal(smmu_vcpu_read(other, DATA_GVA, &v, sizeof(v)), 0);
	uint64_t t0 = tlb_flushes(other);
	assert_int_equal(smmu_vcpu_load_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0); /* the sync drops data's spte */
	assert_null(data_hva(&f));
	tl_assert_audit_clean(f.g.vm);
	assert_int_equal(smmu_vcpu_enter(other), 0);
	assert_int_equal(tlb_flushes(other) - t0, sync_flushes_other);
	tl_assert_audit_clean(f.g.vm);
	/* The host unmaps the data page: every TLB that may map it is flushed first. */
	void *hva = smmu_gfn_to_hva(f.g.vm, DATA_GFN);
	assert_int_equal(smmu_mmu_notifier_invalidate_range(f.g.vm, hva, (uint8_t *)hva + SMMU_PAGE_SIZE), 0);
	assert_int_equal(smmu_vcpu_enter(other), 0);
	assert_int_equal(tlb_flushes(other) - t0, 1);
	tl_assert_audit_clean(f.g.vm);
	smmu_vcpu_destroy(other);
	tl_guest_fini(&f.g);
}

static void test_sync_drop_and_other_tlb_3_11(void **state)
{
	(void)state;
	check_sync_drop_and_other_tlb(SMMU_PROFILE_LINUX_3_11, 0);
}

static void test_sync_drop_and_other_tlb_today(void **state)
{
	(void)state;
	check_sync_drop_and_other_tlb(SMMU_PROFILE_LINUX_TODAY, 1);
}

/* A sync keeps an unchanged pte's spte, with the rights the pte gives now. */
static void test_sync_keeps_unchanged_pte(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	uint64_t pte = gpte(DATA_GFN) & ~(uint64_t)SMMU_PTE_WRITABLE; /* same gfn, read-only now */
	guest_rewrites_data_pte(&f, pte);
	assert_int_equal(unsync_now(f.g.vm), 1);
	assert_int_equal(smmu_vcpu_set_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0);
	assert_int_equal(unsync_now(f.g.vm), 0);
	assert_ptr_equal(data_hva(&f), smmu_gfn_to_hva(f.g.vm, DATA_GFN));
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(f.g.vcpu, DATA_GVA, SMMU_ACC_WRITE, &t), -EACCES);
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

/* FNAME(sync_page) keeps host_writable from the spte it rebuilds: a frame the host mapped
 * read-only (a read fault on a page the host never wrote: the zero page, map_writable false)
 * stays read-only through a sync even where the guest pte allows writes, both eras. */
static void test_sync_keeps_host_read_only(void **state)
{
	(void)state;
	for (int e = 0; e < 2; e++) {
		struct fix f;
		setup(&f, e ? SMMU_PROFILE_LINUX_TODAY : SMMU_PROFILE_LINUX_3_11);
		struct smmu_translation t;
		assert_int_equal(smmu_vcpu_translate(f.g.vcpu, DATA_GVA, SMMU_ACC_WRITE, &t), -EACCES);
		guest_rewrites_data_pte(&f, gpte(DATA_GFN)); /* the same writable, dirty pte */
		assert_int_equal(unsync_now(f.g.vm), 1);
		assert_int_equal(smmu_vcpu_set_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
		assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0);
		assert_int_equal(unsync_now(f.g.vm), 0);
		assert_ptr_equal(data_hva(&f), smmu_gfn_to_hva(f.g.vm, DATA_GFN)); /* kept ... */
		assert_int_equal(smmu_vcpu_translate(f.g.vcpu, DATA_GVA, SMMU_ACC_WRITE, &t), -EACCES);
		tl_assert_audit_clean(f.g.vm);
		tl_guest_fini(&f.g);
	}
}

/* ---- INVLPG ---------------------------------------------------------------------------------- */

static void check_invlpg(enum smmu_profile profile)
{
	struct fix f;
	setup(&f, profile);
	/* The host maps NEW_GFN's page writable (prefetch's atomic lookup needs it). */
	assert_int_equal(smmu_guest_write_u64(f.g.vm, NEW_GFN << SMMU_PAGE_SHIFT, 7), 0);
	guest_rewrites_data_pte(&f, gpte(NEW_GFN));
	struct smmu_vm_counters c0 = counters(f.g.vm);
	assert_int_equal(smmu_vcpu_invlpg(f.g.vcpu, DATA_GVA), 0);
	struct smmu_vm_counters c1 = counters(f.g.vm);
	assert_ptr_equal(data_hva(&f), smmu_gfn_to_hva(f.g.vm, NEW_GFN));
	assert_int_equal(c1.pte_writes, c0.pte_writes);
	assert_int_equal(unsync_now(f.g.vm), 1); /* INVLPG updates one spte; the page stays unsync */
	uint64_t v = 0;
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, DATA_GVA, &v, sizeof(v)), 0);
	assert_int_equal(v, 7);
	tl_assert_audit_clean(f.g.vm);
	/* INVLPG of an address no unsync page maps changes no spte. */
	void *pt = NULL;
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(f.g.vcpu, PT_GVA, 0, &t), 0);
	pt = t.hva;
	assert_int_equal(smmu_vcpu_invlpg(f.g.vcpu, PT_GVA), 0);
	assert_int_equal(smmu_vcpu_translate(f.g.vcpu, PT_GVA, 0, &t), 0);
	assert_ptr_equal(t.hva, pt);
	assert_int_equal(smmu_vcpu_invlpg(NULL, 0), -EINVAL);
	assert_int_equal(smmu_vcpu_invlpg(f.g.vcpu, 0x0000900000000000ull), -EINVAL);
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_invlpg_3_11(void **state)
{
	(void)state;
	check_invlpg(SMMU_PROFILE_LINUX_3_11);
}

static void test_invlpg_today(void **state)
{
	(void)state;
	check_invlpg(SMMU_PROFILE_LINUX_TODAY);
}

/* ---- zap of unsync children ------------------------------------------------------------------ */

static void check_zap_unsync_children(enum smmu_profile profile)
{
	struct fix f;
	setup(&f, profile);
	guest_rewrites_data_pte(&f, gpte(NEW_GFN));
	assert_int_equal(unsync_now(f.g.vm), 1);
	/* The level-2 page above both level-1 pages (data's region and PT_GVA's): zapping it zaps
	 * its unsync child first (mmu_zap_unsync_children) and counts it; the sync child (PT_GVA's
	 * level-1 page) is only unlinked. */
	struct smmu_invalid_list list;
	smmu_invalid_list_init(&list);
	struct smmu_vm_counters c0 = counters(f.g.vm);
	smmu_mmu_lock(f.g.vm, SMMU_SITE_USER0);
	struct smmu_sp *parent = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
	assert_non_null(parent);
	assert_int_equal(smmu_zap_page(f.g.vm, parent, &list), 2);
	assert_int_equal(list.count, 2);
	smmu_commit_zap(f.g.vm, &list);
	smmu_mmu_unlock(f.g.vm);
	struct smmu_vm_counters c1 = counters(f.g.vm);
	assert_int_equal(c1.pages_zapped - c0.pages_zapped, 2);
	assert_int_equal(unsync_now(f.g.vm), 0);
	assert_null(find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K));
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_zap_unsync_children_3_11(void **state)
{
	(void)state;
	check_zap_unsync_children(SMMU_PROFILE_LINUX_3_11);
}

static void test_zap_unsync_children_today(void **state)
{
	(void)state;
	check_zap_unsync_children(SMMU_PROFILE_LINUX_TODAY);
}

/* ---- the eras: prefetch ---------------------------------------------------------------------- */

/* The pte next to data maps data's own level-1 table. The read fault on data shadows that table
 * and prefetches its neighbour: 3.11 unsyncs the new page for the prefetch, today's refuses
 * (-EEXIST) and maps the table read-only. */
static void check_prefetch(enum smmu_profile profile, uint64_t unsync_after)
{
	struct smmu_vm_config cfg;
	smmu_vm_config_default(&cfg);
	cfg.mode = SMMU_MODE_SHADOW;
	cfg.profile = profile;
	struct tl_guest g;
	tl_guest_init_cfg(&g, &cfg, 4096, POOL_GFN, POOL_PAGES);
	assert_int_equal(smmu_gas_map(g.gas, DATA_GVA, DATA_GFN, SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(g.vm, smmu_gas_cr3(g.gas), DATA_GVA, &w), 0);
	assert_int_equal(smmu_gas_map(g.gas, DATA_GVA + 0x1000, w.table_gfn[0], SMMU_LEVEL_4K, RW_USER), 0);
	struct smmu_fault_info fi;
	assert_int_equal(smmu_vcpu_fault(g.vcpu, DATA_GVA, 0, &fi), SMMU_FAULT_MAPPED);
	assert_int_equal(unsync_now(g.vm), unsync_after);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(g.vcpu, DATA_GVA + 0x1000, 0, &t), 0); /* prefetched */
	assert_int_equal(smmu_vcpu_translate(g.vcpu, DATA_GVA + 0x1000, SMMU_ACC_WRITE, &t),
			 unsync_after ? 0 : -EACCES);
	tl_assert_audit_clean(g.vm);
	tl_guest_fini(&g);
}

static void test_prefetch_unsyncs_3_11(void **state)
{
	(void)state;
	check_prefetch(SMMU_PROFILE_LINUX_3_11, 1);
}

static void test_prefetch_never_unsyncs_today(void **state)
{
	(void)state;
	check_prefetch(SMMU_PROFILE_LINUX_TODAY, 0);
}

/* ---- kvm_mmu_get_page finding an unsync page ------------------------------------------------ */

/* A trapped write to data's level-2 table unlinks the unsync page; the next fault finds it again
 * by gfn and role and syncs it before linking it (3.11's kvm_sync_page_transient, today's
 * kvm_sync_page): it stays unsync, and the new link carries its unsync_child bit. The sync drops
 * its only spte (the gfn changed), so 3.11 zaps it and creates the page anew. */
static void check_find_syncs(enum smmu_profile profile, uint64_t zapped, uint64_t unsync_after)
{
	struct fix f;
	setup(&f, profile);
	/* A second data page in the same table, which the fault below does not map again. */
	const smmu_gva_t data2 = DATA_GVA + 0x2000;
	assert_int_equal(smmu_gas_map(f.g.gas, data2, DATA_GFN + 1, SMMU_LEVEL_4K, RW_USER), 0);
	uint64_t v, pte2 = gpte(NEW_GFN + 1);
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, data2, &v, sizeof(v)), 0);
	guest_rewrites_data_pte(&f, gpte(NEW_GFN));
	assert_int_equal(smmu_vcpu_write(f.g.vcpu, PT_GVA + PT64_INDEX(data2, 1) * 8, &pte2, sizeof(pte2)), 0);
	assert_int_equal(unsync_now(f.g.vm), 1);
	smmu_gpa_t pde = (f.l2 << SMMU_PAGE_SHIFT) + PT64_INDEX(DATA_GVA, 2) * 8;
	uint64_t e;
	assert_int_equal(smmu_guest_read_u64(f.g.vm, pde, &e), 0);
	assert_int_equal(smmu_guest_write_u64(f.g.vm, pde, e), 0); /* same value, trapped: unlinks */
	assert_null(data_hva(&f));
	/* A root load's sync walk clears the bits that lead nowhere now; the unlinked page,
	 * reachable from no root, stays unsync. */
	assert_int_equal(smmu_vcpu_set_cr3(f.g.vcpu, smmu_gas_cr3(f.g.gas)), 0);
	assert_int_equal(smmu_vcpu_mmu_reload(f.g.vcpu), 0);
	assert_int_equal(unsync_now(f.g.vm), 1);
	struct smmu_sp *parent = find_sp(f.g.vm, f.l2, SMMU_LEVEL_2M);
	assert_non_null(parent);
	assert_int_equal(parent->unsync_children, 0);
	struct smmu_vm_counters c0 = counters(f.g.vm);
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, DATA_GVA, &v, sizeof(v)), 0);
	struct smmu_vm_counters c1 = counters(f.g.vm);
	assert_ptr_equal(data_hva(&f), smmu_gfn_to_hva(f.g.vm, NEW_GFN));
	struct smmu_translation t; /* the sync dropped data2's stale spte */
	assert_int_equal(smmu_vcpu_translate(f.g.vcpu, data2, 0, &t), -EFAULT);
	assert_int_equal(c1.pages_zapped - c0.pages_zapped, zapped);
	assert_int_equal(c1.pages_created - c0.pages_created, zapped);
	assert_int_equal(unsync_now(f.g.vm), unsync_after);
	struct smmu_sp *sp = find_sp(f.g.vm, f.l1, SMMU_LEVEL_4K);
	assert_non_null(sp);
	assert_int_equal(sp->unsync, unsync_after);
	assert_int_equal(parent->unsync_children, unsync_after); /* link_shadow_page → mark_unsync */
	int i = PT64_INDEX(DATA_GVA, 2);
	if (unsync_after)
		assert_true(parent->unsync_child_bitmap[i / 64] & (1ull << (i % 64)));
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_find_syncs_3_11(void **state)
{
	(void)state;
	check_find_syncs(SMMU_PROFILE_LINUX_3_11, 1, 0);
}

static void test_find_syncs_today(void **state)
{
	(void)state;
	check_find_syncs(SMMU_PROFILE_LINUX_TODAY, 0, 1);
}

/* ---- the eras: a page above level 1 for an unsync page's gfn ---------------------------------- */

/* The guest makes data's level-1 table, unsync, a level-2 table too (a PDPT entry of another
 * 1 GiB region points at it; its entry 1 maps the table itself, so it is also that path's
 * level-1 table). The fault there asks for a level-2 page of the gfn: today's
 * __kvm_mmu_find_shadow_page zaps the unsync page it meets; 3.11's kvm_mmu_get_page syncs it
 * (kvm_sync_pages) and the fetch then finds it again as the new path's level-1 page. */
static void check_higher_level(enum smmu_profile profile, uint64_t zapped, uint64_t created)
{
	struct fix f;
	setup(&f, profile);
	uint64_t self = gpte(f.l1);
	assert_int_equal(smmu_vcpu_write(f.g.vcpu, PT_GVA + 1 * 8, &self, sizeof(self)), 0);
	assert_int_equal(unsync_now(f.g.vm), 1);
	struct smmu_guest_walk w;
	assert_int_equal(smmu_guest_walk(f.g.vm, smmu_gas_cr3(f.g.gas), DATA_GVA, &w), 0);
	const smmu_gva_t region = 2ull << 30, addr = region + (1ull << 21);
	smmu_gpa_t pdpte = (w.table_gfn[2] << SMMU_PAGE_SHIFT) + PT64_INDEX(region, 3) * 8;
	assert_int_equal(smmu_guest_write_u64(f.g.vm, pdpte, gpte(f.l1) & ~(uint64_t)SMMU_PTE_DIRTY), 0);
	struct smmu_vm_counters c0 = counters(f.g.vm);
	uint64_t v;
	assert_int_equal(smmu_vcpu_read(f.g.vcpu, addr, &v, sizeof(v)), 0);
	struct smmu_vm_counters c1 = counters(f.g.vm);
	struct smmu_translation t;
	assert_int_equal(smmu_vcpu_translate(f.g.vcpu, addr, 0, &t), 0);
	assert_ptr_equal(t.hva, smmu_gfn_to_hva(f.g.vm, DATA_GFN));
	assert_int_equal(unsync_now(f.g.vm), 0);
	assert_int_equal(c1.pages_zapped - c0.pages_zapped, zapped);
	assert_int_equal(c1.pages_created - c0.pages_created, created);
	assert_non_null(find_sp(f.g.vm, f.l1, SMMU_LEVEL_2M));
	tl_assert_audit_clean(f.g.vm);
	tl_guest_fini(&f.g);
}

static void test_higher_level_syncs_3_11(void **state)
{
	(void)state;
	check_higher_level(SMMU_PROFILE_LINUX_3_11, 0, 1); /* the level-2 page only */
}

static void test_higher_level_zaps_today(void **state)
{
	(void)state;
	check_higher_level(SMMU_PROFILE_LINUX_TODAY, 1, 2); /* the level-2 page, the level-1 page again */
}

/* ---- the audit's checks, broken on purpose --------------------------------------------------- */

static void test_audit_reports_unsync_breaks(void **state)
{
	(void)state;
	struct fix f;
	setup(&f, SMMU_PROFILE_LINUX_TODAY);
	guest_rewrites_data_pte(&f, gpte(NEW_GFN));
	smmu_vm *vm = f.g.vm;
	struct smmu_sp *sp = find_sp(vm, f.l1, SMMU_LEVEL_4K), *parent = find_sp(vm, f.l2, SMMU_LEVEL_2M);
	assert_non_null(sp);
	assert_non_null(parent);
	assert_true(sp->unsync);
	tl_assert_audit_clean(vm);
	struct smmu_violation v;

	/* The parent loses the unsync_child bit (and its count). */
	int i = PT64_INDEX(DATA_GVA, 2);
	uint64_t bit = 1ull << (i % 64);
	assert_true(parent->unsync_child_bitmap[i / 64] & bit);
	parent->unsync_child_bitmap[i / 64] &= ~bit;
	parent->unsync_children--;
	assert_true(tl_audit_count(vm, SMMU_INV_PARENT_LINKS, &v) >= 1);
	assert_ptr_equal(v.sp, sp);
	parent->unsync_child_bitmap[i / 64] |= bit;
	parent->unsync_children++;
	tl_assert_audit_clean(vm);

	/* unsync_children out of step with the bits. */
	parent->unsync_children++;
	assert_int_equal(tl_audit_count(vm, SMMU_INV_PARENT_LINKS, &v), 1);
	assert_ptr_equal(v.sp, parent);
	parent->unsync_children--;

	/* mmu_unsync off by one. */
	vm->mmu_unsync++;
	assert_int_equal(tl_audit_count(vm, SMMU_INV_PAGE_LISTS, NULL), 1);
	vm->mmu_unsync--;

	/* A level-2 page marked unsync (counted, so only the level is wrong). */
	parent->unsync = true;
	vm->mmu_unsync++;
	assert_int_equal(tl_audit_count(vm, SMMU_INV_PAGE_LISTS, &v), 1);
	assert_ptr_equal(v.sp, parent);
	parent->unsync = false;
	vm->mmu_unsync--;

	/* The unsync page forgotten as unsync: its table's writable spte breaks invariant 5. */
	sp->unsync = false;
	vm->mmu_unsync--;
	assert_true(tl_audit_count(vm, SMMU_INV_WRITE_PROTECT, &v) >= 1);
	assert_int_equal(v.gfn, f.l1);
	sp->unsync = true;
	vm->mmu_unsync++;
	tl_assert_audit_clean(vm);
	tl_guest_fini(&f.g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_unsyncs_3_11),
		cmocka_unit_test(test_write_unsyncs_today),
		cmocka_unit_test(test_sync_on_cr3_3_11),
		cmocka_unit_test(test_sync_on_cr3_today),
		cmocka_unit_test(test_access_after_mov_cr3_syncs_3_11),
		cmocka_unit_test(test_access_after_mov_cr3_syncs_today),
		cmocka_unit_test(test_sync_remarks_mmio_over_new_slot_3_11),
		cmocka_unit_test(test_sync_remarks_mmio_over_new_slot_today),
		cmocka_unit_test(test_sync_drop_and_other_tlb_3_11),
		cmocka_unit_test(test_sync_drop_and_other_tlb_today),
		cmocka_unit_test(test_sync_keeps_unchanged_pte),
		cmocka_unit_test(test_sync_keeps_host_read_only),
		cmocka_unit_test(test_invlpg_3_11),
		cmocka_unit_test(test_invlpg_today),
		cmocka_unit_test(test_zap_unsync_children_3_11),
		cmocka_unit_test(test_zap_unsync_children_today),
		cmocka_unit_test(test_prefetch_unsyncs_3_11),
		cmocka_unit_test(test_prefetch_never_unsyncs_today),
		cmocka_unit_test(test_find_syncs_3_11),
		cmocka_unit_test(test_find_syncs_today),
		cmocka_unit_test(test_higher_level_syncs_3_11),
		cmocka_unit_test(test_higher_level_zaps_today),
		cmocka_unit_test(test_audit_reports_unsync_breaks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
