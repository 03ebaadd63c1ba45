/*
 * smmu-kvmdiff — the kernel backend: a scenario as a real guest on /dev/kvm, ioctls only.
 *
 * The guest (layout in scenario.h) runs in long mode at CPL 3 (code at CPL 0 would be emulated
 * one instruction at a time and never build sptes) with RFLAGS.IOPL = 3, so that its `out` to
 * KD_IO_PORT exits to the host at the end of every step. It loops: read the mailbox (op, address,
 * count, stride, value), do the accesses, `out`. Its page tables are in guest memory, built by
 * the host in the library's shape (gpt.c) before the guest uses them; later page-table changes
 * are stores by the guest itself through its pool window, so KVM traps them as for any guest.
 *
 * Observation: KVM's binary stats (KVM_GET_STATS_FD) of the VM and of every vCPU after each
 * step; when tracefs is usable, the kvmmmu events of this process only (filter on common_pid),
 * with a trace_marker line per step; the tracing state found is restored at the end.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <shadowmmu/guest.h>

#include "backend.h"
#include "gpt.h"

/* ---- the guest program ------------------------------------------------------------------- */

/* Mailbox layout (u64 each): op (1 read, 2 write; 3, 4, 5: write the value's low 4, 2, 1
 * bytes), address, count, stride, value. The narrow stores are reached from the end of the
 * program, so that every instruction of ops 1 and 2 keeps its address (0x1023 the read, 0x1030
 * the store: the addresses of the walks in the records taken before they were added). */
__asm__(".pushsection .rodata\n"
	".globl kd_guest_code\n"
	".globl kd_guest_code_end\n"
	".globl kd_guest_movcr3\n"
	"kd_guest_code:\n"
	".code64\n"
	"1:	mov $0x10000, %esi\n" /* KD_MBOX_GPA */
	"	mov 0(%rsi), %rax\n"
	"	mov 8(%rsi), %rbx\n"
	"	mov 16(%rsi), %rcx\n"
	"	mov 24(%rsi), %rdx\n"
	"	mov 32(%rsi), %r9\n"
	"	test %rcx, %rcx\n"
	"	jz 4f\n"
	"	cmp $2, %eax\n"
	"	jae 5f\n"
	"	nop\n"
	"2:	mov (%rbx), %r8\n"
	"	add %rdx, %rbx\n"
	"	dec %rcx\n"
	"	jnz 2b\n"
	"	jmp 4f\n"
	"3:	mov %r9, (%rbx)\n"
	"	add %rdx, %rbx\n"
	"	dec %rcx\n"
	"	jnz 3b\n"
	"4:	out %al, $0x10\n"     /* KD_IO_PORT */
	"	jmp 1b\n"
	"5:	je 3b\n"
	"	cmp $4, %eax\n"
	"	je 7f\n"
	"	ja 8f\n"
	"6:	mov %r9d, (%rbx)\n"
	"	add %rdx, %rbx\n"
	"	dec %rcx\n"
	"	jnz 6b\n"
	"	jmp 4b\n"
	"7:	mov %r9w, (%rbx)\n"
	"	add %rdx, %rbx\n"
	"	dec %rcx\n"
	"	jnz 7b\n"
	"	jmp 4b\n"
	"8:	mov %r9b, (%rbx)\n"
	"	add %rdx, %rbx\n"
	"	dec %rcx\n"
	"	jnz 8b\n"
	"	jmp 4b\n"
	/* movcr3, run at CPL 0: the guest's own MOV to CR3 (RAX), then HLT exits to the host. */
	"kd_guest_movcr3:\n"
	"	mov %rax, %cr3\n"
	"	hlt\n"
	"	jmp kd_guest_movcr3\n"
	"kd_guest_code_end:\n"
	".popsection\n");
extern const unsigned char kd_guest_code[], kd_guest_code_end[], kd_guest_movcr3[];
_Static_assert(KD_MBOX_GPA == 0x10000, "the guest program loads the mailbox address");

#define GDT_GPA 0x3000ull
#define TSS_GPA 0x4000ull
#define SEL_KCODE 0x08 /* GDT entry 1 */
#define SEL_KDATA 0x10 /* GDT entry 2 */
#define SEL_UDATA 0x1b /* GDT entry 3, RPL 3 */
#define SEL_UCODE 0x23 /* GDT entry 4, RPL 3 */
#define SEL_TSS 0x28   /* GDT entries 5-6 */

/* ---- state ------------------------------------------------------------------------------- */

struct kslot {
	bool live;
	uint32_t flags;
	uint64_t gpa, size;
	void *map;      /* what mmap returned */
	size_t map_len;
	void *hva;      /* the slot's backing (2 MiB aligned inside map) */
};

/* Tracing through an instance of our own (instances/smmu-kvmdiff-PID): its ring buffer, event
 * switches and filters are separate from the global ones, which are never touched, so removing
 * the instance restores the tracing state found. Only a mount we made is undone besides. */
struct trace {
	bool usable, mounted_here, made_instance;
	char dir[96];
	int lockfd;
};

static const char *const trace_events[] = {
	"kvm_mmu_get_page", "kvm_mmu_prepare_zap_page", "kvm_mmu_sync_page", "kvm_mmu_unsync_page",
	"kvm_mmu_set_spte", "kvm_mmu_pagetable_walk",
};
#define N_EVENTS (sizeof(trace_events) / sizeof(trace_events[0]))

struct kvm {
	const struct kd_scenario *sc;
	const struct kd_step *st;
	int sys, vm, vcpu[KD_MAX_VCPUS];
	struct kvm_run *run[KD_MAX_VCPUS];
	size_t run_size;
	int vcpu_as[KD_MAX_VCPUS];
	struct kslot slots[KD_MAX_SLOT_ID + 2]; /* the last is the system slot */
	struct kd_gpt gpt[KD_MAX_AS];
	struct kd_stats vmstats, vcpustats[KD_MAX_VCPUS];
	struct trace tr;
	uint64_t dirty;
	char *err;
	size_t errlen;
};

#define SYS (KD_MAX_SLOT_ID + 1)

static int kfail(struct kvm *K, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int kfail(struct kvm *K, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kd_step_error(K->err, K->errlen, K->sc, K->st, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- probe ------------------------------------------------------------------------------- */

static void add(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *why, size_t len, const char *fmt, ...)
{
	size_t n = strlen(why);
	va_list ap;
	va_start(ap, fmt);
	if (n < len)
		vsnprintf(why + n, len - n, fmt, ap);
	va_end(ap);
}

static bool file_has_word(const char *path, const char *word)
{
	FILE *f = fopen(path, "r");
	char line[256];
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		for (char *t = strtok(line, " \t\n"); t && !found; t = strtok(NULL, " \t\n"))
			found = !strcmp(t, word);
	}
	fclose(f);
	return found;
}

static bool param_on(const char *mod, const char *name, char *val, size_t len)
{
	if (kd_read_param(mod, name, val, len))
		return false;
	return val[0] == 'Y' || val[0] == 'y' || val[0] == '1';
}

int kd_kvm_probe(char *why, size_t len)
{
	char v[32];
	why[0] = 0;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		add(why, len, "kernel backend not usable: open(/dev/kvm): %s (errno %d)", strerror(e), e);
		if (e == ENOENT) {
			add(why, len, "; /proc/misc %s a kvm entry",
			    file_has_word("/proc/misc", "kvm") ? "has" : "lacks");
			struct stat sb;
			bool intel = !stat("/sys/module/kvm_intel", &sb), amd = !stat("/sys/module/kvm_amd", &sb);
			bool kvm = !stat("/sys/module/kvm", &sb), pvm = !stat("/sys/module/kvm_pvm", &sb);
			add(why, len, "; modules loaded: kvm %s, kvm_intel %s, kvm_amd %s%s", kvm ? "yes" : "no",
			    intel ? "yes" : "no", amd ? "yes" : "no", pvm ? ", kvm_pvm yes" : "");
			if (!intel && !amd)
				add(why, len, " (no vendor module has bound: no VMX/SVM here, e.g. a guest "
					      "without nested virtualization)");
		} else if (e == EACCES || e == EPERM) {
			add(why, len, "; this user may not use /dev/kvm (group kvm?)");
		}
		return KD_EXIT_SKIP;
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		add(why, len, "KVM_GET_API_VERSION returned %d, expected %d", api, KVM_API_VERSION);
		close(fd);
		return KD_EXIT_SKIP;
	}
	static const struct {
		int cap;
		const char *name;
	} caps[] = { { KVM_CAP_BINARY_STATS_FD, "KVM_CAP_BINARY_STATS_FD" },
		     { KVM_CAP_READONLY_MEM, "KVM_CAP_READONLY_MEM" },
		     { KVM_CAP_SYNC_MMU, "KVM_CAP_SYNC_MMU (MMU notifier)" } };
	int bad = 0;
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (ioctl(fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			add(why, len, "%smissing %s", bad++ ? ", " : "kernel backend not usable: ", caps[i].name);
		}
	int slots = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	if (slots <= KD_SYS_SLOT)
		add(why, len, "%sKVM_CAP_NR_MEMSLOTS is %d, the harness needs slot id %d",
		    bad++ ? ", " : "kernel backend not usable: ", slots, KD_SYS_SLOT);
	close(fd);
	if (bad)
		return KD_EXIT_SKIP;
	/* Hardware TDP: the guest's page tables are then not shadowed at all. */
	bool ept = param_on("kvm_intel", "ept", v, sizeof(v)), npt = param_on("kvm_amd", "npt", v, sizeof(v));
	char tdp_mmu[8] = "?";
	kd_read_param("kvm", "tdp_mmu", tdp_mmu, sizeof(tdp_mmu));
	if (ept || npt) {
		add(why, len,
		    "hardware TDP is on (%s): KVM shadows no guest page table, it maps guest physical "
		    "memory with %s. Cannot compare: shadow pages of guest tables, created/zapped "
		    "sequences, mmu_pte_write, unsync, write protection, mmu_cache_miss. Could compare "
		    "only dirty-log page counts, which prove nothing about the shadow MMU; not run. "
		    "Reload %s with %s=0 to compare the shadow MMU",
		    ept ? "kvm_intel.ept=Y" : "kvm_amd.npt=1",
		    tdp_mmu[0] == 'Y' ? "the TDP MMU (kvm.tdp_mmu=Y)" : "the shadow MMU in direct mode",
		    ept ? "kvm_intel" : "kvm_amd", ept ? "ept" : "npt");
		return KD_EXIT_SKIP;
	}
	if (tdp_mmu[0] == 'Y')
		add(why, len, "note: kvm.tdp_mmu=Y but hardware TDP is off: guests use the shadow MMU, "
			      "which is what is compared. ");
	struct stat sb;
	if (!stat("/sys/module/kvm_pvm", &sb) && stat("/sys/module/kvm_intel", &sb) && stat("/sys/module/kvm_amd", &sb))
		add(why, len, "note: the vendor module is kvm_pvm (PVM: shadow paging on a guest kernel); "
			      "the guest setup here follows VMX/SVM rules and was not tried under PVM. ");
	return 0;
}

/* ---- binary stats ------------------------------------------------------------------------ */

static int stats_open(struct kd_stats *s, int fd)
{
	int sfd = ioctl(fd, KVM_GET_STATS_FD, NULL);
	if (sfd < 0) {
		memset(s, 0, sizeof(*s));
		return -errno;
	}
	return kd_stats_load(s, sfd);
}

/* The layout (api.rst, KVM_GET_STATS_FD): a header, @num_desc descriptors of
 * sizeof(struct kvm_stats_desc) + name_size bytes at desc_offset, u64 data at data_offset. */
int kd_stats_load(struct kd_stats *s, int sfd)
{
	memset(s, 0, sizeof(*s));
	s->fd = sfd;
	if (pread(s->fd, &s->h, sizeof(s->h), 0) != (ssize_t)sizeof(s->h) || s->h.num_desc > 4096 ||
	    !s->h.name_size || s->h.name_size > 4096)
		return -EIO;
	s->dsize = sizeof(struct kvm_stats_desc) + s->h.name_size;
	s->desc = calloc(s->h.num_desc, s->dsize);
	if (!s->desc)
		return -ENOMEM;
	ssize_t want = (ssize_t)(s->h.num_desc * s->dsize);
	if (pread(s->fd, s->desc, (size_t)want, s->h.desc_offset) != want)
		return -EIO;
	for (uint32_t i = 0; i < s->h.num_desc; i++) {
		struct kvm_stats_desc *d = (void *)(s->desc + i * s->dsize);
		d->name[s->h.name_size - 1] = 0;
		size_t end = d->offset / 8 + d->size;
		if (end > s->ndata)
			s->ndata = end;
	}
	s->data = calloc(s->ndata ? s->ndata : 1, 8);
	return s->data ? 0 : -ENOMEM;
}

int kd_stats_read(struct kd_stats *s)
{
	ssize_t want = (ssize_t)(s->ndata * 8);
	return pread(s->fd, s->data, (size_t)want, s->h.data_offset) == want ? 0 : -EIO;
}

/* The value of stat @name, or false when this kernel has no such stat. */
bool kd_stats_get(const struct kd_stats *s, const char *name, uint64_t *val)
{
	for (uint32_t i = 0; i < s->h.num_desc; i++) {
		struct kvm_stats_desc *d = (void *)(s->desc + i * s->dsize);
		if (!strcmp(d->name, name)) {
			*val = s->data[d->offset / 8];
			return true;
		}
	}
	return false;
}

void kd_stats_close(struct kd_stats *s)
{
	if (s->fd > 0)
		close(s->fd);
	free(s->desc);
	free(s->data);
	memset(s, 0, sizeof(*s));
}

static int counters(struct kvm *K, struct kd_rstep *rs)
{
	static const struct {
		enum kd_ctr c;
		const char *name;
	} vmc[] = {
		{ KD_C_MMU_CACHE_MISS, "mmu_cache_miss" }, { KD_C_MMU_SHADOW_ZAPPED, "mmu_shadow_zapped" },
		{ KD_C_MMU_RECYCLED, "mmu_recycled" },     { KD_C_PAGES_4K, "pages_4k" },
		{ KD_C_PAGES_2M, "pages_2m" },             { KD_C_MMU_PTE_WRITE, "mmu_pte_write" },
		{ KD_C_MMU_UNSYNC, "mmu_unsync" },         { KD_C_MMU_FLOODED, "mmu_flooded" },
		{ KD_C_REMOTE_TLB_FLUSH, "remote_tlb_flush" },
		{ KD_C_REMOTE_TLB_FLUSH_REQUESTS, "remote_tlb_flush_requests" },
	};
	if (kd_stats_read(&K->vmstats))
		return kfail(K, "reading the VM's binary stats failed");
	for (size_t i = 0; i < sizeof(vmc) / sizeof(vmc[0]); i++)
		rs->have[vmc[i].c] = kd_stats_get(&K->vmstats, vmc[i].name, &rs->ctr[vmc[i].c]);
	/* vCPU stats, summed over the vCPUs (pf_mmio_spte_created since Linux 5.19). */
	uint64_t fixed = 0, mmio = 0, v = 0;
	bool have = true, have_mmio = true;
	for (int i = 0; i < K->sc->nvcpus; i++) {
		if (kd_stats_read(&K->vcpustats[i]))
			return kfail(K, "reading vCPU %d's binary stats failed", i);
		have = have && kd_stats_get(&K->vcpustats[i], "pf_fixed", &v);
		fixed += v;
		have_mmio = have_mmio && kd_stats_get(&K->vcpustats[i], "pf_mmio_spte_created", &v);
		mmio += v;
	}
	rs->ctr[KD_C_PF_FIXED] = fixed;
	rs->have[KD_C_PF_FIXED] = have;
	rs->ctr[KD_C_PF_MMIO_SPTE_CREATED] = mmio;
	rs->have[KD_C_PF_MMIO_SPTE_CREATED] = have_mmio;
	rs->ctr[KD_C_DIRTY_PAGES] = K->dirty;
	rs->have[KD_C_DIRTY_PAGES] = true;
	return 0;
}

/* ---- tracefs ----------------------------------------------------------------------------- */

static int tr_write(const struct trace *t, const char *rel, const char *val)
{
	char path[256];
	int len = snprintf(path, sizeof(path), "%s/%s", t->dir, rel);
	if (len < 0 || (size_t)len >= sizeof(path))
		return -1;
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

static struct trace *tr_active; /* for the signal handler */

#define TRACEFS "/sys/kernel/tracing"

static void tr_restore(struct trace *t)
{
	char rel[128];
	if (t->made_instance) {
		/* Switch everything off first: an instance with live events may refuse to go. */
		tr_write(t, "tracing_on", "0");
		for (size_t i = 0; i < N_EVENTS; i++) {
			snprintf(rel, sizeof(rel), "events/kvmmmu/%s/enable", trace_events[i]);
			tr_write(t, rel, "0");
		}
		rmdir(t->dir);
	}
	if (t->mounted_here)
		umount(TRACEFS);
	if (t->lockfd >= 0)
		close(t->lockfd);
	t->usable = t->made_instance = t->mounted_here = false;
	t->lockfd = -1;
	tr_active = NULL;
}

static void tr_signal(int sig)
{
	if (tr_active)
		tr_restore(tr_active);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Set tracing up for this process; on any failure undo what was done and note why. */
static void tr_setup(struct trace *t, struct kd_record *rec)
{
	memset(t, 0, sizeof(*t));
	t->lockfd = -1;
	struct stat sb;
	if (stat(TRACEFS "/instances", &sb)) {
		if (mount("tracefs", TRACEFS, "tracefs", 0, NULL)) {
			kd_record_note(rec, "no trace: tracefs not mounted at " TRACEFS " and mounting it failed (%s)",
				       strerror(errno));
			return;
		}
		t->mounted_here = true;
	}
	tr_active = t;
	signal(SIGINT, tr_signal);
	signal(SIGTERM, tr_signal);
	/* Never two tracing runs at once (meson runs the kernel suite serially; this guards the rest). */
	t->lockfd = open("/tmp/smmu-kvmdiff-trace.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (t->lockfd < 0 || flock(t->lockfd, LOCK_EX)) {
		kd_record_note(rec, "no trace: cannot take /tmp/smmu-kvmdiff-trace.lock");
		tr_restore(t);
		return;
	}
	snprintf(t->dir, sizeof(t->dir), TRACEFS "/instances/smmu-kvmdiff-%d", (int)getpid());
	if (mkdir(t->dir, 0700)) {
		kd_record_note(rec, "no trace: cannot make the instance %s (%s)", t->dir, strerror(errno));
		tr_restore(t);
		return;
	}
	t->made_instance = true;
	char path[160], rel[128], filt[64];
	snprintf(path, sizeof(path), "%s/events/kvmmmu", t->dir);
	if (stat(path, &sb)) {
		kd_record_note(rec, "no trace: tracefs has no kvmmmu events (kvm built without tracepoints?)");
		tr_restore(t);
		return;
	}
	snprintf(filt, sizeof(filt), "common_pid == %d", (int)getpid());
	bool ok = !tr_write(t, "tracing_on", "0") && !tr_write(t, "buffer_size_kb", "16384");
	for (size_t i = 0; ok && i < N_EVENTS; i++) {
		snprintf(rel, sizeof(rel), "events/kvmmmu/%s/filter", trace_events[i]);
		ok = !tr_write(t, rel, filt);
		snprintf(rel, sizeof(rel), "events/kvmmmu/%s/enable", trace_events[i]);
		ok = ok && !tr_write(t, rel, "1");
	}
	ok = ok && !tr_write(t, "trace", "") && !tr_write(t, "tracing_on", "1");
	if (!ok) {
		kd_record_note(rec, "no trace: could not configure the kvmmmu events (%s)", strerror(errno));
		tr_restore(t);
		return;
	}
	t->usable = true;
	rec->events = true;
}

/* Parse "sp gen G gfn HEX lN ... qN[ direct] ..." after an event name. */
static int tr_page(const char *s, int *level, uint64_t *gfn, bool *direct)
{
	unsigned gen, l;
	unsigned long long g;
	if (sscanf(s, "sp gen %u gfn %llx l%u", &gen, &g, &l) != 3)
		return -1;
	*level = (int)l;
	*gfn = g;
	const char *q = strstr(s, " q");
	*direct = q && !strncmp(q + 2 + strspn(q + 2, "0123456789"), " direct", 7);
	return 0;
}

int kd_trace_line(const char *line, struct kd_ev *ev)
{
	const char *p;
	int level;
	uint64_t gfn;
	bool direct;
	char kind;
	if ((p = strstr(line, "kvm_mmu_get_page: ")) && !tr_page(p + 18, &level, &gfn, &direct)) {
		size_t n = strcspn(p, "\n");
		if (n < 4 || strncmp(p + n - 4, " new", 4))
			return 0; /* "existing": found, not created */
		kind = 'c';
	} else if ((p = strstr(line, "kvm_mmu_prepare_zap_page: ")) && !tr_page(p + 26, &level, &gfn, &direct)) {
		kind = 'z';
	} else if ((p = strstr(line, "kvm_mmu_pagetable_walk: "))) {
		unsigned long long addr;
		unsigned pferr;
		if (sscanf(p + 24, "addr %llx pferr %x", &addr, &pferr) != 2)
			return 0;
		*ev = (struct kd_ev){ .kind = 'f', .gfn = addr, .pferr = pferr };
		return 1;
	} else {
		return 0;
	}
	*ev = (struct kd_ev){ .kind = kind, .level = (uint8_t)level, .gfn = gfn, .direct = direct };
	return 1;
}

/* Read the events of the step just run into @rs, then empty the buffer. */
static int tr_collect(struct kvm *K, struct kd_rstep *rs)
{
	struct trace *t = &K->tr;
	if (!t->usable)
		return 0;
	char path[192];
	snprintf(path, sizeof(path), "%s/trace", t->dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return kfail(K, "reading %s: %s", path, strerror(errno));
	char line[512];
	int rc = 0;
	while (!rc && fgets(line, sizeof(line), f)) {
		unsigned long long in, written;
		if (sscanf(line, "# entries-in-buffer/entries-written: %llu/%llu", &in, &written) == 2 && in != written)
			rc = kfail(K, "the trace lost %llu events (ring buffer too small)", written - in);
		struct kd_ev ev;
		if (kd_trace_line(line, &ev) && (ev.kind == 'f' ? kd_rstep_fault(rs, ev.gfn, ev.pferr)
								 : kd_rstep_event(rs, ev.kind, ev.level, ev.gfn, ev.direct)))
			rc = kfail(K, "out of memory");
	}
	fclose(f);
	if (!rc && tr_write(t, "trace", ""))
		rc = kfail(K, "clearing the trace: %s", strerror(errno));
	return rc;
}

static void tr_mark(struct kvm *K, size_t n, const struct kd_step *st)
{
	char m[192];
	if (!K->tr.usable)
		return;
	snprintf(m, sizeof(m), "smmu-kvmdiff step %zu line %d: %s\n", n, st->line, st->text);
	tr_write(&K->tr, "trace_marker", m);
}

int kd_trace_check(char *out, size_t len)
{
	struct trace t;
	struct kd_record rec = { 0 };
	int rc = -1;
	out[0] = 0;
	tr_setup(&t, &rec);
	if (!t.usable) {
		snprintf(out, len, "%s", rec.nnotes ? rec.notes[0] : "tracing not usable");
		goto done;
	}
	char marker[64], line[512], path[160];
	snprintf(marker, sizeof(marker), "smmu-kvmdiff check %d", (int)getpid());
	snprintf(path, sizeof(path), "%s/trace", t.dir);
	FILE *f = NULL;
	if (tr_write(&t, "trace_marker", marker) || !(f = fopen(path, "r"))) {
		snprintf(out, len, "%s: cannot write the marker or read the trace (%s)", t.dir, strerror(errno));
		goto done;
	}
	bool seen = false;
	while (!seen && fgets(line, sizeof(line), f))
		seen = strstr(line, marker) != NULL;
	fclose(f);
	snprintf(out, len, "tracing usable: instance %s, kvmmmu events enabled for pid %d, trace_marker %s%s",
		 t.dir, (int)getpid(), seen ? "read back" : "NOT read back",
		 t.mounted_here ? " (tracefs mounted for the run, unmounted after)" : "");
	rc = seen ? 0 : -1;
done:
	tr_restore(&t);
	kd_record_free(&rec);
	return rc;
}

/* ---- guest memory and page tables -------------------------------------------------------- */

static void *gpa_hva(struct kvm *K, uint64_t gpa)
{
	for (int i = 0; i <= SYS; i++) {
		struct kslot *s = &K->slots[i];
		if (s->live && gpa >= s->gpa && gpa - s->gpa < s->size)
			return (char *)s->hva + (gpa - s->gpa);
	}
	return NULL;
}

static int mem_read(void *ctx, uint64_t gpa, uint64_t *val)
{
	uint64_t *p = gpa_hva(ctx, gpa);
	if (!p)
		return -EFAULT;
	*val = __atomic_load_n(p, __ATOMIC_RELAXED);
	return 0;
}

static int mem_write(void *ctx, uint64_t gpa, uint64_t val)
{
	uint64_t *p = gpa_hva(ctx, gpa);
	if (!p)
		return -EFAULT;
	__atomic_store_n(p, val, __ATOMIC_RELAXED);
	return 0;
}

static int mem_zero(void *ctx, uint64_t gpa)
{
	void *p = gpa_hva(ctx, gpa);
	if (!p)
		return -EFAULT;
	memset(p, 0, 4096);
	return 0;
}

static int gpt_map(void *ctx, uint64_t gva, uint64_t gfn, int level, uint32_t prot)
{
	return kd_gpt_map(ctx, gva, gfn, level, prot);
}

/* ---- slots ------------------------------------------------------------------------------- */

static int set_region(struct kvm *K, int id, const struct kslot *s, uint64_t size)
{
	struct kvm_userspace_memory_region r = {
		.slot = (uint32_t)(id == SYS ? KD_SYS_SLOT : id),
		.flags = s->flags,
		.guest_phys_addr = s->gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)s->hva,
	};
	return ioctl(K->vm, KVM_SET_USER_MEMORY_REGION, &r) ? -errno : 0;
}

static int slot_create(struct kvm *K, int id, uint64_t gpa, uint64_t size, uint32_t flags, bool thp)
{
	struct kslot *s = &K->slots[id];
	size_t align = 2u << 20;
	s->map_len = size + align;
	s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->map == MAP_FAILED)
		return -errno;
	s->hva = (void *)(((uintptr_t)s->map + align - 1) & ~(uintptr_t)(align - 1));
	/* Say which page size backs the slot, so that the host mapping level is not left to chance. */
	madvise(s->hva, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	s->gpa = gpa;
	s->size = size;
	s->flags = flags;
	int r = set_region(K, id, s, size);
	if (r) {
		munmap(s->map, s->map_len);
		memset(s, 0, sizeof(*s));
		return r;
	}
	s->live = true;
	return 0;
}

static int slot_delete(struct kvm *K, int id)
{
	struct kslot *s = &K->slots[id];
	int r = set_region(K, id, s, 0);
	if (r)
		return r;
	munmap(s->map, s->map_len);
	memset(s, 0, sizeof(*s));
	return 0;
}

/* ---- vCPUs ------------------------------------------------------------------------------- */

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t dpl, bool code)
{
	*s = (struct kvm_segment){ .base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
				   .present = 1, .dpl = dpl, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0,
				   .g = 1 };
}

static int vcpu_setup(struct kvm *K, int i, struct kvm_cpuid2 *cpuid)
{
	K->vcpu[i] = ioctl(K->vm, KVM_CREATE_VCPU, i);
	if (K->vcpu[i] < 0)
		return kfail(K, "KVM_CREATE_VCPU %d: %s", i, strerror(errno));
	K->run[i] = mmap(NULL, K->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, K->vcpu[i], 0);
	if (K->run[i] == MAP_FAILED) {
		K->run[i] = NULL;
		return kfail(K, "mmap kvm_run: %s", strerror(errno));
	}
	/* The host's CPUID as KVM supports it: long mode, NX and a real MAXPHYADDR. */
	if (ioctl(K->vcpu[i], KVM_SET_CPUID2, cpuid))
		return kfail(K, "KVM_SET_CPUID2: %s", strerror(errno));
	struct kvm_sregs sr;
	if (ioctl(K->vcpu[i], KVM_GET_SREGS, &sr))
		return kfail(K, "KVM_GET_SREGS: %s", strerror(errno));
	seg(&sr.cs, SEL_UCODE, 11, 3, true); /* execute/read, accessed; 64-bit; DPL 3 */
	seg(&sr.ds, SEL_UDATA, 3, 3, false); /* read/write, accessed; DPL 3 */
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.tr = (struct kvm_segment){ .base = TSS_GPA, .limit = 0x67, .selector = SEL_TSS, .type = 11, .present = 1 };
	sr.ldt = (struct kvm_segment){ .unusable = 1 };
	sr.gdt.base = GDT_GPA;
	sr.gdt.limit = 7 * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0; /* no handlers: any guest exception ends in a shutdown exit */
	sr.cr0 = 0x80050033; /* PG | AM | WP | NE | ET | MP | PE */
	sr.cr4 = 0x20;       /* PAE */
	sr.efer = 0xd00;     /* NXE | LMA | LME */
	sr.cr3 = 0; /* set by the scenario's cr3 step before the first run */
	if (ioctl(K->vcpu[i], KVM_SET_SREGS, &sr))
		return kfail(K, "KVM_SET_SREGS (long mode, CPL 3): %s", strerror(errno));
	struct kvm_regs rg = { .rip = KD_CODE_GPA, .rflags = 0x3002 }; /* IOPL 3: `out` exits */
	if (ioctl(K->vcpu[i], KVM_SET_REGS, &rg))
		return kfail(K, "KVM_SET_REGS: %s", strerror(errno));
	if ((errno = -stats_open(&K->vcpustats[i], K->vcpu[i])))
		return kfail(K, "KVM_GET_STATS_FD (vCPU %d): %s", i, strerror(errno));
	K->vcpu_as[i] = -1;
	return 0;
}

/* Run vCPU @v until the guest's `out` to KD_IO_PORT; MMIO exits are completed and resumed. */
static int guest_run(struct kvm *K, int v, uint64_t op, uint64_t addr, uint64_t count, uint64_t stride,
		     uint64_t value)
{
	if (K->vcpu_as[v] < 0)
		return kfail(K, "vcpu %d has no cr3 yet", v);
	uint64_t *mb = gpa_hva(K, KD_MBOX_GPA);
	mb[0] = op, mb[1] = addr, mb[2] = count, mb[3] = stride, mb[4] = value;
	for (;;) {
		if (ioctl(K->vcpu[v], KVM_RUN, 0)) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return kfail(K, "KVM_RUN: %s", strerror(errno));
		}
		struct kvm_run *r = K->run[v];
		switch (r->exit_reason) {
		case KVM_EXIT_IO:
			if (r->io.port == KD_IO_PORT && r->io.direction == KVM_EXIT_IO_OUT)
				return 0;
			return kfail(K, "unexpected I/O exit, port %#x", r->io.port);
		case KVM_EXIT_MMIO:
			continue; /* reads see zeros; writes are dropped */
		case KVM_EXIT_SHUTDOWN: {
			struct kvm_regs rg;
			ioctl(K->vcpu[v], KVM_GET_REGS, &rg);
			return kfail(K, "the guest shut down (triple fault) at rip %#llx, rbx %#llx: it took an "
					"exception, e.g. a #PF on an address its tables do not map",
				     (unsigned long long)rg.rip, (unsigned long long)rg.rbx);
		}
		case KVM_EXIT_FAIL_ENTRY:
			return kfail(K, "VM entry failed, hardware reason %#llx",
				     (unsigned long long)r->fail_entry.hardware_entry_failure_reason);
		case KVM_EXIT_INTERNAL_ERROR:
			return kfail(K, "KVM internal error, suberror %u", r->internal.suberror);
		default:
			return kfail(K, "unexpected exit reason %u", r->exit_reason);
		}
	}
}

/*
 * The guest's own MOV to CR3 (movcr3), which KVM intercepts (kvm_set_cr3), unlike KVM_SET_SREGS
 * (the cr3 step: kvm_mmu_reset_context). MOV CR3 needs CPL 0: the vCPU gets ring-0 CS and SS by
 * KVM_SET_SREGS with CR0, CR3, CR4 and EFER unchanged (__set_sregs_common asks for an MMU reset
 * only when one of those changes), runs a stub (mov %rax,%cr3; hlt: KVM_EXIT_HLT without an
 * in-kernel irqchip), and gets its CPL 3 segments back with the CR3 it now reads, again without
 * a reset. The guest's loop starts again at its top at the next run (a new RIP also keeps KVM
 * from completing the last `out` on the stub: complete_fast_pio_out checks the RIP).
 */
static int guest_movcr3(struct kvm *K, int v, uint64_t cr3)
{
	if (K->vcpu_as[v] < 0)
		return kfail(K, "vcpu %d has no cr3 yet", v);
	struct kvm_sregs user, sr;
	struct kvm_regs saved, rg;
	if (ioctl(K->vcpu[v], KVM_GET_SREGS, &user) || ioctl(K->vcpu[v], KVM_GET_REGS, &saved))
		return kfail(K, "KVM_GET_SREGS/REGS: %s", strerror(errno));
	sr = user;
	seg(&sr.cs, SEL_KCODE, 11, 0, true);
	seg(&sr.ss, SEL_KDATA, 3, 0, false);
	if (ioctl(K->vcpu[v], KVM_SET_SREGS, &sr))
		return kfail(K, "KVM_SET_SREGS (CPL 0): %s", strerror(errno));
	rg = saved;
	rg.rip = KD_CODE_GPA + (uint64_t)(kd_guest_movcr3 - kd_guest_code);
	rg.rax = cr3;
	if (ioctl(K->vcpu[v], KVM_SET_REGS, &rg))
		return kfail(K, "KVM_SET_REGS: %s", strerror(errno));
	for (;;) {
		if (ioctl(K->vcpu[v], KVM_RUN, 0)) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return kfail(K, "KVM_RUN: %s", strerror(errno));
		}
		if (K->run[v]->exit_reason == KVM_EXIT_HLT)
			break;
		if (K->run[v]->exit_reason == KVM_EXIT_MMIO)
			continue;
		return kfail(K, "movcr3: exit reason %u instead of HLT", K->run[v]->exit_reason);
	}
	if (ioctl(K->vcpu[v], KVM_GET_SREGS, &sr))
		return kfail(K, "KVM_GET_SREGS: %s", strerror(errno));
	if (sr.cr3 != cr3)
		return kfail(K, "movcr3: CR3 is %#llx after the stub, not %#llx", (unsigned long long)sr.cr3,
			     (unsigned long long)cr3);
	user.cr3 = sr.cr3;
	if (ioctl(K->vcpu[v], KVM_SET_SREGS, &user))
		return kfail(K, "KVM_SET_SREGS (CPL 3): %s", strerror(errno));
	saved.rip = KD_CODE_GPA;
	if (ioctl(K->vcpu[v], KVM_SET_REGS, &saved))
		return kfail(K, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

/* ---- steps ------------------------------------------------------------------------------- */

static int host_map(struct kvm *K, int as, const struct kd_step *st)
{
	int r = st ? kd_layout_map(st, gpt_map, &K->gpt[as]) : kd_layout_as(&K->sc->as[as], gpt_map, &K->gpt[as]);
	return r ? kfail(K, "building the guest tables: %s", strerror(-r)) : 0;
}

static int step(struct kvm *K, const struct kd_step *st)
{
	int r = 0;
	struct kslot *s = st->op == KD_SLOT || st->op == KD_DELETE || st->op == KD_MOVE || st->op == KD_FLAGS ||
					  st->op == KD_INVALIDATE || st->op == KD_DIRTYLOG
				  ? &K->slots[st->id]
				  : NULL;
	switch (st->op) {
	case KD_VCPUS:
		return 0;
	case KD_MMU_PAGES:
		r = ioctl(K->vm, KVM_SET_NR_MMU_PAGES, (unsigned long)st->b) ? -errno : 0;
		break;
	case KD_SLOT:
		r = slot_create(K, st->id, st->a, st->b, (st->log ? KVM_MEM_LOG_DIRTY_PAGES : 0) |
							     (st->ro ? KVM_MEM_READONLY : 0), st->thp);
		break;
	case KD_DELETE:
		r = slot_delete(K, st->id);
		break;
	case KD_MOVE: {
		uint64_t old = s->gpa;
		s->gpa = st->a;
		if ((r = set_region(K, st->id, s, s->size)))
			s->gpa = old;
		break;
	}
	case KD_FLAGS: {
		uint32_t old = s->flags;
		s->flags = (s->flags & ~(uint32_t)KVM_MEM_LOG_DIRTY_PAGES) | (st->log ? KVM_MEM_LOG_DIRTY_PAGES : 0);
		if ((r = set_region(K, st->id, s, s->size)))
			s->flags = old;
		break;
	}
	case KD_AS: {
		struct kd_mem mem = { K, mem_read, mem_write, mem_zero };
		if ((r = kd_gpt_init(&K->gpt[st->id], &mem, st->a >> 12, st->b)))
			break;
		return host_map(K, st->id, NULL);
	}
	case KD_MAP:
		return host_map(K, st->id, st);
	case KD_CR3: {
		struct kvm_sregs sr;
		if (ioctl(K->vcpu[st->vcpu], KVM_GET_SREGS, &sr))
			return kfail(K, "KVM_GET_SREGS: %s", strerror(errno));
		sr.cr3 = K->sc->as[st->id].pool_gpa;
		if (ioctl(K->vcpu[st->vcpu], KVM_SET_SREGS, &sr))
			return kfail(K, "KVM_SET_SREGS: %s", strerror(errno));
		K->vcpu_as[st->vcpu] = st->id;
		return 0;
	}
	case KD_MOVCR3:
		if (guest_movcr3(K, st->vcpu, K->sc->as[st->id].pool_gpa))
			return -1;
		K->vcpu_as[st->vcpu] = st->id;
		return 0;
	case KD_TOUCH:
		return guest_run(K, st->vcpu, st->write ? 2 : 1, st->a, st->b, st->c, 0);
	case KD_GPTE:
	case KD_GCLEAR: {
		const struct kd_as *as = &K->sc->as[st->id];
		uint64_t gva, val;
		if (K->vcpu_as[st->vcpu] != st->id)
			return kfail(K, "vcpu %d does not run in address space '%s' (cr3 first)", st->vcpu, as->name);
		int e = kd_guest_store(&K->gpt[st->id], as, st, &gva, &val);
		if (e == -ERANGE)
			return kfail(K, "the %d-byte store at offset %d runs past the table's end", st->bytes, st->offset);
		if (e)
			return kfail(K, "gva %#llx has no such entry in '%s'", (unsigned long long)st->a, as->name);
		uint64_t op = st->bytes == 8 ? 2 : st->bytes == 4 ? 3 : st->bytes == 2 ? 4 : 5;
		return guest_run(K, st->vcpu, op, gva, 1, 0, val);
	}
	case KD_INVALIDATE:
		/* Zapping the pages' host mapping fires the MMU notifier's invalidate_range_start. */
		r = madvise((char *)s->hva + st->a, st->b, MADV_DONTNEED) ? -errno : 0;
		break;
	case KD_DIRTYLOG: {
		size_t words = (s->size / 4096 + 63) / 64;
		uint64_t *bm = calloc(words, 8), n = 0;
		if (!bm)
			return kfail(K, "out of memory");
		struct kvm_dirty_log dl = { .slot = (uint32_t)st->id, .dirty_bitmap = bm };
		r = ioctl(K->vm, KVM_GET_DIRTY_LOG, &dl) ? -errno : 0;
		for (size_t i = 0; !r && i < words; i++)
			n += (uint64_t)__builtin_popcountll(bm[i]);
		free(bm);
		if (!r)
			K->dirty = n;
		break;
	}
	}
	return r ? kfail(K, "%s", strerror(-r)) : 0;
}

static void teardown(struct kvm *K)
{
	tr_restore(&K->tr);
	for (int i = 0; i < KD_MAX_VCPUS; i++) {
		kd_stats_close(&K->vcpustats[i]);
		if (K->run[i])
			munmap(K->run[i], K->run_size);
		if (K->vcpu[i] > 0)
			close(K->vcpu[i]);
	}
	kd_stats_close(&K->vmstats);
	if (K->vm > 0)
		close(K->vm);
	for (int i = 0; i <= SYS; i++)
		if (K->slots[i].map)
			munmap(K->slots[i].map, K->slots[i].map_len);
	if (K->sys > 0)
		close(K->sys);
}

/* Write the GDT (null, kernel code/data, user data/code, 64-bit TSS) and the program. */
static void write_system(struct kvm *K)
{
	uint64_t *gdt = gpa_hva(K, GDT_GPA);
	gdt[1] = 0x00af9b000000ffffull; /* kernel code, 64-bit */
	gdt[2] = 0x00cf93000000ffffull; /* kernel data */
	gdt[3] = 0x00cff3000000ffffull; /* user data, DPL 3 */
	gdt[4] = 0x00affb000000ffffull; /* user code, 64-bit, DPL 3 */
	gdt[5] = 0x00008b0000000067ull | ((TSS_GPA & 0xffffff) << 16) | ((TSS_GPA >> 24) << 56);
	gdt[6] = TSS_GPA >> 32;
	memcpy(gpa_hva(K, KD_CODE_GPA), kd_guest_code, (size_t)(kd_guest_code_end - kd_guest_code));
}

int kd_kvm_run(const struct kd_scenario *sc, struct kd_record *rec, char *err, size_t errlen)
{
	char why[1024];
	if (kd_kvm_probe(why, sizeof(why))) {
		snprintf(err, errlen, "%s", why);
		return KD_EXIT_SKIP;
	}
	struct kvm *K = calloc(1, sizeof(*K));
	if (!K) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	K->sc = sc, K->err = err, K->errlen = errlen;
	K->tr.lockfd = -1;
	memset(rec, 0, sizeof(*rec));
	kd_record_header(rec, "kernel", sc->name);
	if (why[0])
		kd_record_note(rec, "%s", why);
	int rc = -1;
	struct kvm_cpuid2 *cpuid = NULL;

	K->sys = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (K->sys < 0 || (K->vm = ioctl(K->sys, KVM_CREATE_VM, 0)) < 0) {
		kfail(K, "KVM_CREATE_VM: %s", strerror(errno));
		goto out;
	}
	int sz = ioctl(K->sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0) {
		kfail(K, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto out;
	}
	K->run_size = (size_t)sz;
	/* KVM_GET_SUPPORTED_CPUID says E2BIG while the array is too small. */
	for (uint32_t n = 64;; n *= 2) {
		free(cpuid);
		cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
		if (!cpuid) {
			kfail(K, "out of memory");
			goto out;
		}
		cpuid->nent = n;
		if (!ioctl(K->sys, KVM_GET_SUPPORTED_CPUID, cpuid))
			break;
		if (errno != E2BIG || n >= 4096) {
			kfail(K, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
			goto out;
		}
	}
	if ((errno = -stats_open(&K->vmstats, K->vm))) {
		kfail(K, "KVM_GET_STATS_FD (VM): %s", strerror(errno));
		goto out;
	}
	if ((errno = -slot_create(K, SYS, 0, KD_SYS_BYTES, 0, false))) {
		kfail(K, "system slot: %s", strerror(errno));
		goto out;
	}
	write_system(K);
	for (int i = 0; i < sc->nvcpus; i++)
		if (vcpu_setup(K, i, cpuid))
			goto out;
	tr_setup(&K->tr, rec);
	for (size_t i = 0; i < sc->nsteps; i++) {
		K->st = &sc->steps[i];
		struct kd_rstep *rs = kd_record_step(rec, K->st->line, K->st->text);
		if (!rs) {
			kfail(K, "out of memory");
			goto out;
		}
		tr_mark(K, i + 1, K->st);
		uint64_t t0 = kd_now_ns();
		int r = step(K, K->st);
		rs->ns = kd_now_ns() - t0;
		if (r || counters(K, rs) || tr_collect(K, rs))
			goto out;
	}
	rc = 0;
out:
	free(cpuid);
	teardown(K);
	free(K);
	if (rc)
		kd_record_free(rec);
	return rc;
}
