/*
 * smmu-kvmdiff — the two backends and the comparator.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KVMDIFF_BACKEND_H
#define KVMDIFF_BACKEND_H

#include <stdbool.h>
#include <stdio.h>

#include <linux/kvm.h>

#include "record.h"
#include "scenario.h"

/* Exit status of a test that could not run here (meson's "skipped"). */
#define KD_EXIT_SKIP 77

/* What the library run models: the kernel a record was (or a live run is) taken on. */
struct kd_target {
	char kernel[96];            /* its release (uname -r), or "" for today's */
	int profile;                /* enum smmu_profile: 6.1 before 6.4, else today's */
	const char *profile_name;   /* "linux-6.1", "linux-today" */
	bool thp_write_allocates;   /* host mm 6.13 on: a write to the huge zero page allocates a
				     * THP (do_huge_pmd_wp_page) instead of splitting it */
};

/* The target for kernel release @release ("6.1.0-57-amd64"; NULL or "" for today's). */
void kd_target_for_kernel(const char *release, struct kd_target *t);

/*
 * Run @sc through libshadowmmu (shadow mode, the profile of @tg, or today's for NULL) and fill
 * @rec. With @audit, smmu_audit() runs after every step and any violation fails the run.
 * @return 0, or -1 with "file:line: what" in @err.
 */
int kd_lib_run(const struct kd_scenario *sc, const struct kd_target *tg, struct kd_record *rec, bool audit,
	       char *err, size_t errlen);

/*
 * Can the kernel backend run here? Writes every reason it cannot, and what a TDP kernel would
 * and would not let it compare, to @why. @return 0 usable, KD_EXIT_SKIP not usable.
 */
int kd_kvm_probe(char *why, size_t len);

/*
 * Check that the kernel backend's tracing works here: make its tracefs instance, enable the
 * kvmmmu events for this process, write a trace_marker line and read it back, then remove it
 * all. Says what it found in @out. @return 0 usable, -1 not.
 */
int kd_trace_check(char *out, size_t len);

/*
 * Run @sc as a real guest on /dev/kvm and fill @rec (counters from KVM's binary stats, created
 * and zapped pages from tracefs when usable).
 * @return 0; KD_EXIT_SKIP with the reason in @err; -1 with "file:line: what" in @err.
 */
int kd_kvm_run(const struct kd_scenario *sc, struct kd_record *rec, char *err, size_t errlen);

/*
 * Compare @want (the kernel's record) with @got (the library's) step by step: counters present
 * on both sides, then created and zapped pages in order. Prints a table with each step's wall
 * time on both sides and their ratio, and the first divergence with its context.
 * @return 0 when they match, 1 otherwise (2 when the records are not of the same scenario).
 */
int kd_compare(FILE *out, const struct kd_record *want, const struct kd_record *got);
/*
 * kd_compare, and on a divergence the signature of the first one in @sig: "step N:" then what
 * differs there, in a fixed order: the counters by name, "created", "zapped", or "steps" (the
 * step texts differ, or one record ends). Empty when they match.
 */
int kd_compare_sig(FILE *out, const struct kd_record *want, const struct kd_record *got, char *sig,
		   size_t siglen);

/* ---- the kernel backend's parsers, exposed for tests ---- */

/* A KVM binary-stats file (KVM_GET_STATS_FD). */
struct kd_stats {
	int fd;
	struct kvm_stats_header h;
	char *desc;     /* num_desc descriptors of sizeof(kvm_stats_desc) + name_size bytes */
	size_t dsize;
	uint64_t *data;
	size_t ndata;
};
/* Read the header and descriptors of stats file @sfd (which it then owns). @return 0 or -errno. */
int kd_stats_load(struct kd_stats *s, int sfd);
/* Read the current values. @return 0 or -EIO. */
int kd_stats_read(struct kd_stats *s);
/* The value of stat @name (its first item); false when this kernel has no such stat. */
bool kd_stats_get(const struct kd_stats *s, const char *name, uint64_t *val);
void kd_stats_close(struct kd_stats *s);

/* Parse one line of tracefs' "trace": 1 and *ev for a kvm_mmu_get_page "new" (kind 'c'), a
 * kvm_mmu_prepare_zap_page (kind 'z') or a kvm_mmu_pagetable_walk (kind 'f'), else 0. */
int kd_trace_line(const char *line, struct kd_ev *ev);

#endif
