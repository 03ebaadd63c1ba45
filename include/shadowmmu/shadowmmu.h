/*
 * libshadowmmu — a user-space model of the Linux KVM x86 shadow MMU.
 *
 * The umbrella header: include this one. Each area has its own header:
 *   vm.h        the VM, memslots, guest physical memory, the MMU notifier
 *   guest.h     guest page tables (x86-64 4-level)
 *   vcpu.h      vCPUs: CR3, requests, faults, translation, memory access
 *   zap.h       zap_all, fast zap, memslot flush
 *   strategy.h  primitives for writing your own strategy
 *   audit.h     the correctness oracle
 *   inspect.h   read-only questions (a slot's pages, a gfn's rmaps and lpage_info), locking
 *   stats.h     mmu_lock statistics and counters
 * Every function returns 0 (or a count) on success and a negative errno on failure.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SHADOWMMU_H
#define SHADOWMMU_H

#include "version.h"
#include "common.h"
#include "stats.h"
#include "vm.h"
#include "guest.h"
#include "vcpu.h"
#include "zap.h"
#include "strategy.h"
#include "audit.h"
#include "inspect.h"

#endif
