/*
 * Intrusive lists, as the kernel's list_head and hlist.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SMMU_LIST_H
#define SMMU_LIST_H

#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* A circular doubly linked list; the head is a node of its own (list_head). */
struct list_node {
	struct list_node *next, *prev;
};

static inline void list_init(struct list_node *h) { h->next = h->prev = h; }
static inline int list_empty(const struct list_node *h) { return h->next == h; }

static inline void list_insert_(struct list_node *n, struct list_node *prev, struct list_node *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}
/* list_add: insert right after the head (the newest end). */
static inline void list_add(struct list_node *n, struct list_node *h) { list_insert_(n, h, h->next); }
/* list_add_tail: insert right before the head (the oldest end). */
static inline void list_add_tail(struct list_node *n, struct list_node *h) { list_insert_(n, h->prev, h); }
static inline void list_del(struct list_node *n)
{
	n->next->prev = n->prev;
	n->prev->next = n->next;
	n->next = n->prev = n;
}
static inline void list_move(struct list_node *n, struct list_node *h) { list_del(n); list_add(n, h); }
/* Move every node of @from to the front of @to, leaving @from empty. */
static inline void list_splice_init(struct list_node *from, struct list_node *to)
{
	if (list_empty(from))
		return;
	struct list_node *first = from->next, *last = from->prev, *at = to->next;
	first->prev = to;
	to->next = first;
	last->next = at;
	at->prev = last;
	list_init(from);
}

/* A singly linked hash chain with O(1) removal (hlist_head / hlist_node). */
struct hlist_node {
	struct hlist_node *next, **pprev;
};
struct hlist_head {
	struct hlist_node *first;
};

static inline void hlist_add_head(struct hlist_node *n, struct hlist_head *h)
{
	n->next = h->first;
	if (h->first)
		h->first->pprev = &n->next;
	h->first = n;
	n->pprev = &h->first;
}
static inline void hlist_del(struct hlist_node *n)
{
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	n->next = NULL;
	n->pprev = NULL;
}
static inline int hlist_unhashed(const struct hlist_node *n) { return n->pprev == NULL; }

#endif
