/*
 * smmu-kvmdiff — the scenario parser. Every error names file:line and what is wrong.
 *
 * SPDX-License-Identifier: MIT
 */
#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const op_names[] = {
	[KD_VCPUS] = "vcpus", [KD_MMU_PAGES] = "mmu_pages", [KD_SLOT] = "slot",
	[KD_DELETE] = "delete", [KD_MOVE] = "move", [KD_FLAGS] = "flags", [KD_AS] = "as",
	[KD_MAP] = "map", [KD_CR3] = "cr3", [KD_TOUCH] = "touch", [KD_GPTE] = "gpte",
	[KD_GCLEAR] = "gclear", [KD_INVALIDATE] = "invalidate", [KD_DIRTYLOG] = "dirtylog",
	[KD_MOVCR3] = "movcr3",
};

const char *kd_op_name(enum kd_op op)
{
	return (unsigned)op < sizeof(op_names) / sizeof(op_names[0]) ? op_names[op] : "?";
}

int kd_step_error(char *err, size_t len, const struct kd_scenario *sc, const struct kd_step *st, const char *fmt,
		  va_list ap)
{
	int n = snprintf(err, len, "%s:%d: %s: ", sc->path, st ? st->line : 0, st ? kd_op_name(st->op) : "setup");
	if (n >= 0 && (size_t)n < len)
		vsnprintf(err + n, len - (size_t)n, fmt, ap);
	return -1;
}

uint64_t kd_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool kd_step_runs_guest(const struct kd_step *st)
{
	return st->op == KD_TOUCH || st->op == KD_GPTE || st->op == KD_GCLEAR || st->op == KD_MOVCR3;
}

/* What the parser knows of a slot while it reads the file. */
struct pslot {
	bool live, log, ro;
	uint64_t gpa, size;
};

struct parser {
	const char *name;
	int line;
	char *err;
	size_t errlen;
	struct kd_scenario *sc;
	struct pslot slots[KD_MAX_SLOT_ID + 1];
	uint64_t next_pool;
	char *tok[16];
	int ntok;
};

static int fail(struct parser *p, const char *fmt, ...)
{
	int n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, p->line);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < p->errlen)
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A number: decimal or 0x hex, with an optional K, M or G (binary) suffix. */
static int number(struct parser *p, int i, const char *what, uint64_t *out)
{
	if (i >= p->ntok)
		return fail(p, "%s: missing %s", p->tok[0], what);
	const char *s = p->tok[i];
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (end == s || errno || *s == '-')
		return fail(p, "%s: %s '%s' is not a number", p->tok[0], what, s);
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (*end || (shift && v > (~0ull >> shift)))
		return fail(p, "%s: %s '%s' is not a number", p->tok[0], what, s);
	*out = (uint64_t)v << shift;
	return 0;
}

static int slot_id(struct parser *p, int i, bool must_live, int *out)
{
	uint64_t v = 0;
	if (number(p, i, "slot id", &v))
		return -1;
	if (v > KD_MAX_SLOT_ID)
		return fail(p, "%s: slot id %llu out of range 0..%d", p->tok[0], (unsigned long long)v,
			    KD_MAX_SLOT_ID);
	if (must_live && !p->slots[v].live)
		return fail(p, "%s: slot %llu does not exist here", p->tok[0], (unsigned long long)v);
	*out = (int)v;
	return 0;
}

static int as_index(struct parser *p, int i, int *out)
{
	if (i >= p->ntok)
		return fail(p, "%s: missing address-space name", p->tok[0]);
	for (int a = 0; a < p->sc->nas; a++)
		if (!strcmp(p->sc->as[a].name, p->tok[i])) {
			*out = a;
			return 0;
		}
	return fail(p, "%s: unknown address space '%s' (declare it with 'as')", p->tok[0], p->tok[i]);
}

/* The range [gpa, gpa + size) overlaps a live slot other than @except, or the system slot. */
static int overlap(struct parser *p, uint64_t gpa, uint64_t size, int except)
{
	if (gpa < KD_SYS_BYTES)
		return fail(p, "%s: gpa %#llx lies in the system area [0, %#llx)", p->tok[0],
			    (unsigned long long)gpa, (unsigned long long)KD_SYS_BYTES);
	if (gpa + size > KD_GPA_LIMIT || gpa + size < gpa)
		return fail(p, "%s: range ends beyond %#llx (the guest's MAXPHYADDR)", p->tok[0],
			    (unsigned long long)KD_GPA_LIMIT);
	for (int i = 0; i <= KD_MAX_SLOT_ID; i++)
		if (i != except && p->slots[i].live && gpa < p->slots[i].gpa + p->slots[i].size &&
		    p->slots[i].gpa < gpa + size)
			return fail(p, "%s: range overlaps slot %d", p->tok[0], i);
	return 0;
}

/* Keywords after the positional arguments: flags and "vcpu V" / "gstride S". */
static int options(struct parser *p, int from, struct kd_step *st, const char *allowed)
{
	for (int i = from; i < p->ntok; i++) {
		const char *t = p->tok[i];
		char key[16];
		snprintf(key, sizeof(key), " %s ", t);
		if (!strstr(allowed, key))
			return fail(p, "%s: unexpected '%s' (allowed:%s)", p->tok[0], t, allowed);
		if (!strcmp(t, "vcpu") || !strcmp(t, "gstride") || !strcmp(t, "at") || !strcmp(t, "bytes") ||
		    !strcmp(t, "offset")) {
			uint64_t v = 0;
			if (number(p, i + 1, t, &v))
				return -1;
			i++;
			if (t[0] == 'b') {
				if (v != 1 && v != 2 && v != 4 && v != 8)
					return fail(p, "%s: bytes 1, 2, 4 or 8", p->tok[0]);
				st->bytes = (int)v;
			} else if (t[0] == 'o') {
				if (v > 7)
					return fail(p, "%s: offset 0..7 (bytes past the entry's start)", p->tok[0]);
				st->offset = (int)v;
			} else if (t[0] == 'a') {
				st->a = v;
			} else if (t[0] == 'v') {
				if (v >= (uint64_t)p->sc->nvcpus)
					return fail(p, "%s: vcpu %llu but the scenario has %d", p->tok[0],
						    (unsigned long long)v, p->sc->nvcpus);
				st->vcpu = (int)v;
			} else {
				st->gstride = v;
			}
		} else if (!strcmp(t, "log")) {
			st->log = true;
		} else if (!strcmp(t, "ro")) {
			st->ro = true;
		} else if (!strcmp(t, "thp")) {
			st->thp = true;
		} else if (!strcmp(t, "nx")) {
			st->nx = true;
		} else if (!strcmp(t, "2m")) {
			st->large = true;
		} else if (!strcmp(t, "noa")) {
			st->noa = true;
		}
	}
	return 0;
}

static int need(struct parser *p, int n)
{
	if (p->ntok < n)
		return fail(p, "%s: expected at least %d arguments", p->tok[0], n - 1);
	return 0;
}

static bool gva_ok(uint64_t gva, uint64_t len)
{
	return gva >= KD_IDMAP_BYTES && gva + len <= (1ull << 47) && gva + len > gva &&
	       (gva + len <= KD_PTWIN || gva >= KD_PTWIN + (1ull << 30));
}

static int parse_step(struct parser *p, struct kd_step *st)
{
	struct kd_scenario *sc = p->sc;
	const char *w = p->tok[0];
	int op = -1;
	for (unsigned i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (!strcmp(w, op_names[i]))
			op = (int)i;
	if (op < 0)
		return fail(p, "unknown step '%s'", w);
	st->op = (enum kd_op)op;
	st->bytes = 8;
	uint64_t v = 0;
	switch (st->op) {
	case KD_VCPUS:
		if (sc->nsteps)
			return fail(p, "vcpus: must be the first step");
		if (number(p, 1, "count", &v) || options(p, 2, st, " "))
			return -1;
		if (v < 1 || v > KD_MAX_VCPUS)
			return fail(p, "vcpus: %llu out of range 1..%d", (unsigned long long)v, KD_MAX_VCPUS);
		sc->nvcpus = st->id = (int)v;
		return 0;
	case KD_MMU_PAGES:
		if (number(p, 1, "page count", &st->b) || options(p, 2, st, " "))
			return -1;
		/* kvm_vm_ioctl_set_nr_mmu_pages refuses fewer than KVM_MIN_ALLOC_MMU_PAGES. */
		if (st->b < 64 || st->b > (1u << 30))
			return fail(p, "mmu_pages: %llu out of range 64..2^30 (KVM refuses fewer than 64)",
				    (unsigned long long)st->b);
		return 0;
	case KD_SLOT:
		if (need(p, 4) || slot_id(p, 1, false, &st->id) || number(p, 2, "gpa", &st->a) ||
		    number(p, 3, "size", &st->b) || options(p, 4, st, " log ro thp "))
			return -1;
		if (p->slots[st->id].live)
			return fail(p, "slot: slot %d exists already", st->id);
		if ((st->a | st->b) & 4095 || !st->b)
			return fail(p, "slot: gpa and size must be non-zero multiples of 4 KiB");
		if (overlap(p, st->a, st->b, -1))
			return -1;
		p->slots[st->id] = (struct pslot){ true, st->log, st->ro, st->a, st->b };
		return 0;
	case KD_DELETE:
		if (need(p, 2) || slot_id(p, 1, true, &st->id) || options(p, 2, st, " "))
			return -1;
		p->slots[st->id].live = false;
		return 0;
	case KD_MOVE:
		if (need(p, 3) || slot_id(p, 1, true, &st->id) || number(p, 2, "gpa", &st->a) ||
		    options(p, 3, st, " "))
			return -1;
		if (st->a & 4095)
			return fail(p, "move: gpa must be a multiple of 4 KiB");
		if (overlap(p, st->a, p->slots[st->id].size, st->id))
			return -1;
		p->slots[st->id].gpa = st->a;
		return 0;
	case KD_FLAGS:
		if (need(p, 3) || slot_id(p, 1, true, &st->id))
			return -1;
		if (strcmp(p->tok[2], "log") && strcmp(p->tok[2], "none"))
			return fail(p, "flags: say 'log' or 'none' (read-only cannot change in place)");
		if (options(p, 2, st, " log none "))
			return -1;
		p->slots[st->id].log = st->log;
		return 0;
	case KD_AS:
		st->a = 0;
		if (need(p, 3) || number(p, 2, "pool pages", &st->b) || options(p, 3, st, " at "))
			return -1;
		if (sc->nas == KD_MAX_AS)
			return fail(p, "as: at most %d address spaces", KD_MAX_AS);
		if (strlen(p->tok[1]) >= sizeof(sc->as[0].name))
			return fail(p, "as: name '%s' too long", p->tok[1]);
		for (int a = 0; a < sc->nas; a++)
			if (!strcmp(sc->as[a].name, p->tok[1]))
				return fail(p, "as: '%s' declared twice", p->tok[1]);
		if (st->b < 8 || st->b > 65536)
			return fail(p, "as: pool of %llu pages: at least 8, at most 65536", (unsigned long long)st->b);
		if (st->a) {
			/* The tables must be writable guest memory: KVM sets their Accessed bits. */
			int in = -1;
			for (int i = 0; i <= KD_MAX_SLOT_ID && in < 0; i++)
				if (p->slots[i].live && !p->slots[i].ro && st->a >= p->slots[i].gpa &&
				    st->a + st->b * 4096 <= p->slots[i].gpa + p->slots[i].size)
					in = i;
			if ((st->a & 4095) || in < 0)
				return fail(p, "as: 'at' gpa must be 4 KiB aligned, the pool inside one writable slot");
		} else if (p->next_pool + st->b * 4096 > KD_SYS_BYTES) {
			return fail(p, "as: pool of %llu pages does not fit in the system area (%llu pages left)",
				    (unsigned long long)st->b,
				    (unsigned long long)((KD_SYS_BYTES - p->next_pool) / 4096));
		} else {
			st->a = p->next_pool;
			p->next_pool += st->b * 4096;
		}
		st->id = sc->nas;
		snprintf(sc->as[sc->nas].name, sizeof(sc->as[0].name), "%s", p->tok[1]);
		sc->as[sc->nas].pool_gpa = st->a;
		sc->as[sc->nas].pool_pages = st->b;
		sc->nas++;
		return 0;
	case KD_MAP: {
		if (need(p, 5) || as_index(p, 1, &st->id) || number(p, 2, "gva", &st->a) ||
		    number(p, 3, "gpa", &st->c) || number(p, 4, "count", &st->b) ||
		    options(p, 5, st, " 2m gstride ro nx noa "))
			return -1;
		uint64_t psz = st->large ? 2ull << 20 : 4096;
		if (!st->gstride)
			st->gstride = psz;
		if ((st->a | st->c | st->gstride) & (psz - 1))
			return fail(p, "map: gva, gpa and gstride must be multiples of the page size");
		if (!st->b || st->b > (1u << 20))
			return fail(p, "map: count %llu out of range 1..%u", (unsigned long long)st->b, 1u << 20);
		if (!gva_ok(st->a, (st->b - 1) * st->gstride + psz))
			return fail(p, "map: gvas must lie above 2 MiB, below 2^47 and clear of the pool "
				       "window [%#llx, +1 GiB)", (unsigned long long)KD_PTWIN);
		if (st->c < KD_SYS_BYTES || st->c + st->b * psz > KD_GPA_LIMIT)
			return fail(p, "map: gpas must lie in [%#llx, %#llx)", (unsigned long long)KD_SYS_BYTES,
				    (unsigned long long)KD_GPA_LIMIT);
		return 0;
	}
	case KD_CR3:
	case KD_MOVCR3:
		if (need(p, 2) || as_index(p, 1, &st->id) || options(p, 2, st, " vcpu "))
			return -1;
		return 0;
	case KD_TOUCH:
		if (need(p, 5) || number(p, 1, "gva", &st->a) || number(p, 2, "count", &st->b) ||
		    number(p, 3, "stride", &st->c))
			return -1;
		if (strcmp(p->tok[4], "read") && strcmp(p->tok[4], "write"))
			return fail(p, "touch: say 'read' or 'write', not '%s'", p->tok[4]);
		st->write = p->tok[4][0] == 'w';
		if (options(p, 5, st, " vcpu "))
			return -1;
		if (!st->b || st->b > (1u << 24) || !gva_ok(st->a, (st->b - 1) * st->c + 8) || (st->a & 7) ||
		    (st->c & 7))
			return fail(p, "touch: count 1..2^24, 8-byte aligned gva and stride, clear of the "
				       "low 2 MiB and the pool window");
		return 0;
	case KD_GPTE:
		if (need(p, 4) || as_index(p, 1, &st->id) || number(p, 2, "gva", &st->a) ||
		    number(p, 3, "gpa", &st->c) || options(p, 4, st, " ro vcpu bytes offset "))
			return -1;
		if (!gva_ok(st->a, 4096) || (st->a & 4095) || (st->c & 4095))
			return fail(p, "gpte: gva and gpa 4 KiB aligned, gva clear of the low 2 MiB and the pool window");
		if (st->c < KD_SYS_BYTES || st->c >= KD_GPA_LIMIT)
			return fail(p, "gpte: gpa must lie in [%#llx, %#llx)", (unsigned long long)KD_SYS_BYTES,
				    (unsigned long long)KD_GPA_LIMIT);
		return 0;
	case KD_GCLEAR:
		if (need(p, 4) || as_index(p, 1, &st->id) || number(p, 2, "gva", &st->a) ||
		    number(p, 3, "level", &v) || options(p, 4, st, " vcpu bytes offset "))
			return -1;
		if (v < 1 || v > 3)
			return fail(p, "gclear: level 1 (pte), 2 (pde) or 3 (pdpte)");
		st->level = (int)v;
		if (!gva_ok(st->a, 4096))
			return fail(p, "gclear: gva clear of the low 2 MiB and the pool window");
		return 0;
	case KD_INVALIDATE:
		if (need(p, 4) || slot_id(p, 1, true, &st->id) || number(p, 2, "offset", &st->a) ||
		    number(p, 3, "size", &st->b) || options(p, 4, st, " "))
			return -1;
		if ((st->a | st->b) & 4095 || !st->b || st->a + st->b > p->slots[st->id].size)
			return fail(p, "invalidate: a non-empty 4 KiB-aligned range inside slot %d", st->id);
		return 0;
	case KD_DIRTYLOG:
		if (need(p, 2) || slot_id(p, 1, true, &st->id) || options(p, 2, st, " "))
			return -1;
		if (!p->slots[st->id].log)
			return fail(p, "dirtylog: slot %d does not log dirty pages here", st->id);
		return 0;
	}
	return fail(p, "unknown step '%s'", w);
}

int kd_scenario_parse(const char *name, const char *text, struct kd_scenario *sc, char *err, size_t errlen)
{
	memset(sc, 0, sizeof(*sc));
	sc->nvcpus = 1;
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	snprintf(sc->name, sizeof(sc->name), "%.*s", (int)strcspn(base, "."), base);
	snprintf(sc->path, sizeof(sc->path), "%s", name);

	struct parser *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	*p = (struct parser){ .name = name, .err = err, .errlen = errlen, .sc = sc, .next_pool = KD_POOL_BASE };
	size_t cap = 0;
	int r = 0;
	const char *s = text;
	while (*s && !r) {
		p->line++;
		size_t len = strcspn(s, "\n");
		char buf[256];
		if (len >= sizeof(buf)) {
			r = fail(p, "line longer than %zu characters", sizeof(buf) - 1);
			break;
		}
		memcpy(buf, s, len);
		buf[len] = 0;
		s += len + (s[len] == '\n');
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = 0;
		char *line = buf;
		while (isspace((unsigned char)*line))
			line++;
		for (char *e = line + strlen(line); e > line && isspace((unsigned char)e[-1]);)
			*--e = 0;
		if (!*line)
			continue;
		struct kd_step st = { .line = p->line };
		snprintf(st.text, sizeof(st.text), "%s", line);
		p->ntok = 0;
		for (char *t = strtok(line, " \t"); t; t = strtok(NULL, " \t")) {
			if (p->ntok == (int)(sizeof(p->tok) / sizeof(p->tok[0]))) {
				r = fail(p, "too many words");
				break;
			}
			p->tok[p->ntok++] = t;
		}
		if (r || (r = parse_step(p, &st)))
			break;
		if (sc->nsteps == cap) {
			cap = cap ? cap * 2 : 32;
			struct kd_step *n = realloc(sc->steps, cap * sizeof(*n));
			if (!n) {
				r = fail(p, "out of memory");
				break;
			}
			sc->steps = n;
		}
		sc->steps[sc->nsteps++] = st;
	}
	if (!r && !sc->nsteps) {
		p->line = 0;
		r = fail(p, "no steps");
	}
	free(p);
	if (r)
		kd_scenario_free(sc);
	return r;
}

int kd_scenario_load(const char *path, struct kd_scenario *sc, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *text = NULL;
	size_t len = 0, cap = 0;
	int c;
	while ((c = fgetc(f)) != EOF) {
		if (len + 1 >= cap) {
			cap = cap ? cap * 2 : 4096;
			char *n = realloc(text, cap);
			if (!n) {
				free(text);
				fclose(f);
				snprintf(err, errlen, "%s: out of memory", path);
				return -1;
			}
			text = n;
		}
		text[len++] = (char)c;
	}
	fclose(f);
	if (!text)
		text = calloc(1, 1);
	else
		text[len] = 0;
	int r = text ? kd_scenario_parse(path, text, sc, err, errlen) : -1;
	free(text);
	return r;
}

void kd_scenario_free(struct kd_scenario *sc)
{
	free(sc->steps);
	sc->steps = NULL;
	sc->nsteps = 0;
}
