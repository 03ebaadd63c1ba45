/*
 * smmu-kvmdiff — records: what one backend observed, step by step, and its text format.
 *
 *   smmu-kvmdiff record 1
 *   source kernel|library
 *   scenario NAME
 *   kernel RELEASE            (uname -r where it was taken)
 *   date YYYY-MM-DDTHH:MM:SSZ
 *   events 1|0                (0: created/zapped pages were not observable, e.g. no tracefs)
 *   param kvm.tdp_mmu=Y       (every /sys/module/kvm*\/parameters file; any number of lines)
 *   note TEXT                 (any number of lines: what the taker wants a reader to know)
 *   step N LINE TEXT...       (N from 1; LINE is the scenario line)
 *   ns NANOSECONDS            wall time of the step
 *   ctr NAME VALUE|-          value after the step; '-' = this side has no such counter
 *   c LEVEL GFN DIRECT        a shadow page created (kvm_mmu_get_page "new"), in order
 *   z LEVEL GFN DIRECT        a shadow page zapped (kvm_mmu_prepare_zap_page), in order
 *   f ADDR PFERR              a guest page-table walk (kvm_mmu_pagetable_walk: faults, and in the
 *                             kernel also the emulator's walks); hex; recorded, not compared
 *   end
 * Numbers are decimal except GFN (hex, 0x). Lines starting with '#' are comments.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KVMDIFF_RECORD_H
#define KVMDIFF_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The counters that mean the same on both sides, by KVM's binary stats names. */
enum kd_ctr {
	KD_C_MMU_CACHE_MISS,  /* shadow pages created */
	KD_C_MMU_SHADOW_ZAPPED,
	KD_C_MMU_RECYCLED,
	KD_C_PF_FIXED,        /* sum over vCPUs */
	KD_C_PAGES_4K,        /* leaf sptes mapping 4 KiB now */
	KD_C_PAGES_2M,        /* leaf sptes mapping 2 MiB now */
	KD_C_MMU_PTE_WRITE,
	KD_C_MMU_UNSYNC,
	KD_C_MMU_FLOODED,
	KD_C_REMOTE_TLB_FLUSH, /* kvm_flush_remote_tlbs calls that kicked a vCPU in guest mode */
	KD_C_REMOTE_TLB_FLUSH_REQUESTS, /* kvm_flush_remote_tlbs calls */
	KD_C_DIRTY_PAGES,     /* pages the last dirtylog step returned (the harness's) */
	KD_C_PF_MMIO_SPTE_CREATED, /* MMIO sptes faults installed, sum over vCPUs (5.19+) */
	KD_NCTR
};

const char *kd_ctr_name(enum kd_ctr c);

/* One created or zapped shadow page, or one guest page-table walk. */
struct kd_ev {
	char kind;     /* 'c' created, 'z' zapped, 'f' walk (fault) */
	uint8_t level;
	bool direct;
	uint32_t pferr; /* 'f': the error code (PFERR_* bits: P 1, W 2, U 4, RSVD 8, F 16) */
	uint64_t gfn;   /* 'f': the address */
};

struct kd_rstep {
	int line;
	char text[128];
	uint64_t ns;
	uint64_t ctr[KD_NCTR];
	bool have[KD_NCTR];
	struct kd_ev *ev;
	size_t nev, cap;
};

struct kd_record {
	char source[16];
	char scenario[64];
	char kernel[96];
	char date[32];
	bool events;       /* created/zapped sequences were observed ("events 1") */
	char (*params)[400];
	size_t nparams;
	char (*notes)[160];
	size_t nnotes;
	struct kd_rstep *steps;
	size_t nsteps, cap;
};

/* Add an empty step; @return it or NULL (out of memory). */
struct kd_rstep *kd_record_step(struct kd_record *r, int line, const char *text);
/* Append an event to @s. @return 0 or -1 (out of memory). */
int kd_rstep_event(struct kd_rstep *s, char kind, int level, uint64_t gfn, bool direct);
/* Append a walk ('f') of @addr with error code @pferr. @return 0 or -1 (out of memory). */
int kd_rstep_fault(struct kd_rstep *s, uint64_t addr, uint32_t pferr);
int kd_record_param(struct kd_record *r, const char *p);
int kd_record_note(struct kd_record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kd_record_free(struct kd_record *r);

/* Fill the header every record carries: @source, @scenario, kernel release (uname), UTC date,
 * and every parameter of the loaded kvm modules (host.c). */
void kd_record_header(struct kd_record *r, const char *source, const char *scenario);
/* Read /sys/module/@mod/parameters/@name into @buf (trimmed). @return 0 or -1 (absent). */
int kd_read_param(const char *mod, const char *name, char *buf, size_t len);

/* Write @r. @return 0 or -1 (errno). */
int kd_record_write(FILE *f, const struct kd_record *r);
int kd_record_save(const char *path, const struct kd_record *r);
/* Read a record; on error "path:line: what" in @err. @return 0, -1, or -2 when the file does
 * not exist (errno ENOENT). */
int kd_record_load(const char *path, struct kd_record *r, char *err, size_t errlen);

#endif
