#!/usr/bin/env python3
"""Write the seed corpus of the operation fuzzer (fuzz_ops.c) into tests/fuzz/corpus/.

Each seed is a small scripted scenario encoded the way fuzz_ops.c decodes bytes; together they
run every kind of operation in both MMU modes. Re-run after changing the decoder:

    python3 tests/fuzz/make_corpus.py

SPDX-License-Identifier: MIT
"""
import os
import random
import struct
import sys

# Opcodes: enum fuzz_op in fuzz_ops.h.
(SLOT_CREATE, SLOT_DELETE, SLOT_MOVE, SLOT_FLAGS, GAS_MAP, GAS_UNMAP, GUEST_WRITE, GUEST_READ,
 FAULT, ACCESS, ENTER, SET_CR3, TRANSLATE, VCPU_RECREATE, ZAP_ALL, FAST_ZAP, MEMSLOT_FLUSH,
 NOTIFIER, MAX_PAGES, DIRTY_LOG, FLUSH_STRATEGY, STRATEGY_API) = range(22)
OP_COUNT = 22

# Layout indexes (fuzz_ops.c layouts[]): (base_gfn, npages).
L_SLOT0, L_2048x512, L_MISALIGNED, L_8192x1024, L_TINY, L_ONE, L_OVERLAP0, L_3072 = range(8)
L_512, L_9216x4096, L_4096x3, L_13312, L_1G, L_20000x7, L_6144, L_1536 = range(8, 16)
L_1G = 0xfc  # only this byte chooses the 1 GiB layout; 12 alone is 2 MiB at its base
L_1G_SMALL = 12
LAYOUT_BASE = [0, 2048, 4099, 8192, 2560, 16384, 0, 3072, 512, 9216, 4096, 13312, 262144, 20000,
               6144, 1536]

# Strategy indexes (fuzz_ops.c strategies[]).
S_ZAP_ALL, S_FAST_ZAP, S_HASH_WALK, S_RMAP_REBUILD = range(4)
HOLD, RESTART, GENERATION = range(3)
# Harness byte (fuzz_ops.c): every needbreak check breaks (1), every 3rd (2), every 16th (3);
# audit after every operation, every 4th, 16th or 64th (and always at the end). Most seeds audit
# every 16th operation (the audit costs as much as the operations); the first few, the seed's
# scenario and the forced-break one after every operation.
BREAK_NONE, BREAK_ALWAYS, BREAK_3, BREAK_16 = range(4)
AUDIT_EVERY_OP, AUDIT_4, AUDIT_16, AUDIT_64 = range(4)
LOG = 1
RO = 6

# gva bases (fuzz_ops.c gva_bases[]): index -> address.
GVA_0, GVA_2M, GVA_1G, GVA_HIGH, GVA_512G, GVA_KERNEL, GVA_4K, GVA_3G = range(8)


def config(direct=False, today=False, strategy=S_FAST_ZAP, batch1=False, small_hash=False, budget=0,
           breaks=BREAK_NONE, audit=AUDIT_16, race=0):
    """Byte 0: the VM's configuration; byte 1: the harness's (forced lock breaks, audit interval,
    and with race=n (1-8) a fault of vCPU 2 on a second thread inside each zap's lock breaks
    from the zap's nth page on)."""
    c = (1 if direct else 0) | (2 if today else 0) | (strategy << 2) | (0x10 if batch1 else 0)
    c |= (0x20 if small_hash else 0) | (budget << 6)
    h = breaks | (audit << 2) | ((0x10 | ((race - 1) << 5)) if race else 0)
    return bytes([c, h])


def u16(v):
    return struct.pack('<H', v & 0xffff)


def u64(v):
    return struct.pack('<Q', v & 0xffffffffffffffff)


def gfn_pool(gas, off):
    """A frame of address space @gas's page-table pool."""
    return bytes([0 | (gas << 2)]) + u16(off)


def gfn_layout(layout, off):
    """layouts[layout].base + off."""
    return bytes([1 | ((layout & 15) << 2)]) + u16(off)


def gfn_low(gfn):
    return bytes([2]) + u16(gfn)


def gfn_far(n):
    """n << 9: 2 MiB aligned frames, most of them in no slot."""
    return bytes([3]) + u16(n)


def gva(base, idx):
    return bytes([base, idx])


def slot_create(sid, layout, flags=0):
    return bytes([SLOT_CREATE, sid, layout, flags])


def slot_delete(sid):
    return bytes([SLOT_DELETE, sid])


def slot_move(sid, layout):
    return bytes([SLOT_MOVE, sid, layout])


def slot_flags(sid, flags):
    return bytes([SLOT_FLAGS, sid, flags])


def host_level(sid, level):
    """SLOT_FLAGS's other kind (bit 7): the host's page size behind the slot, level 1-3."""
    return bytes([SLOT_FLAGS, sid, 0x80 | ((level - 1) << 3)])


def gas_map(gas, level, gva_b, gfn_b, prot=3):
    lv = {1: 0, 2: 3, 3: 7}[level]
    return bytes([GAS_MAP, gas, lv]) + gva_b + gfn_b + bytes([prot])


def gas_unmap(gas, level, gva_b):
    return bytes([GAS_UNMAP, gas, level - 1]) + gva_b


def guest_write(gfn_b, entry=0, length_idx=0, value=0, anywhere=None):
    off = (0x8000 | anywhere) if anywhere is not None else entry
    return bytes([GUEST_WRITE]) + gfn_b + u16(off) + bytes([length_idx]) + u64(value)


def guest_read(gfn_b, off=0):
    return bytes([GUEST_READ]) + gfn_b + u16(off)


def host_wrote(gfn_b, off=0):
    """GUEST_READ's other kind: the host stores through its pointer (offset bit 15)."""
    return bytes([GUEST_READ]) + gfn_b + u16(0x8000 | off)


def fault(vcpu, addr_b, write=False, user=False, exec_=False, low=0):
    acc = (1 if write else 0) | (2 if user else 0) | (12 if exec_ else 0)
    return bytes([FAULT, vcpu]) + addr_b + bytes([low, acc])


def access(vcpu, addr_b, write=False, log2len=3, off=0, value=0):
    return bytes([ACCESS, vcpu, log2len | (4 if write else 0)]) + addr_b + u16(off) + u64(value)


def enter(vcpu):
    return bytes([ENTER, vcpu])


def mmu_reload(vcpu):
    """ENTER's other kind (vCPU byte bit 7): the entry loads a root (kvm_mmu_reload)."""
    return bytes([ENTER, 0x80 | vcpu])


def set_cr3(vcpu, gas=None, gfn_b=None, mov=False):
    """KVM_SET_SREGS; with mov=True (bit 2) the guest's MOV CR3 (smmu_vcpu_load_cr3)."""
    m = 4 if mov else 0
    if gfn_b is not None:
        return bytes([SET_CR3, vcpu, 1 | m]) + gfn_b
    return bytes([SET_CR3, vcpu, (gas << 1) | m])


def load_cr3(vcpu, gas=None, gfn_b=None):
    return set_cr3(vcpu, gas, gfn_b, mov=True)


def translate(vcpu, addr_b, acc=0):
    return bytes([TRANSLATE, vcpu]) + addr_b + bytes([acc])


def invlpg(vcpu, addr_b):
    """TRANSLATE's other kind (access byte bit 7)."""
    return bytes([TRANSLATE, vcpu]) + addr_b + bytes([0x80])


def vcpu_recreate(vcpu):
    return bytes([VCPU_RECREATE, vcpu])


def zap_all(mode, max_rounds=0):
    return bytes([ZAP_ALL, mode | (max_rounds << 2)])


def fast_zap(kind=0):
    return bytes([FAST_ZAP, kind])


def memslot_flush(sid, strategy):
    return bytes([MEMSLOT_FLUSH, sid, strategy])


def notifier(sid, off, length):
    return bytes([NOTIFIER, sid]) + u16(off) + u16(length)


def notifier_release():
    return bytes([NOTIFIER, 0]) + u16(0) + u16(0xffff)


def pfn_hook(n):
    """NOTIFIER's other kind (length 0xfffd): the host's page fault of the next n (1-4) faults on
    slot pages unmaps the page it maps, and those faults retry."""
    return bytes([NOTIFIER, 0]) + u16(n - 1) + u16(0xfffd)


def max_pages(idx):
    return bytes([MAX_PAGES, idx])


# memslots_gen's table (fuzz_ops.c gens[]): 0, 146, 149, 2^19-4, 2^19-2, 2^20+146, 3*2^19-2, bit 63.
G_0, G_146, G_149, G_WRAP4, G_WRAP2, G_2W146, G_3WRAP2, G_BIT63 = range(8)


def memslots_gen(idx):
    """MAX_PAGES's other kind (bit 7): the memslots' starting generation."""
    return bytes([MAX_PAGES, 0x80 | (idx << 3)])


def dirty_log(sid):
    return bytes([DIRTY_LOG, sid])


def flush_strategy(s):
    return bytes([FLUSH_STRATEGY, s])


def strategy_api(action, arg=0):
    return bytes([STRATEGY_API, action]) + u16(arg)


def bump_forget():
    """STRATEGY_API 4's other kind (bit 7): bump, lpage_info re-init, reload, in one hold."""
    return strategy_api(4 | 0x80)


# ---- scenarios --------------------------------------------------------------------------------

def data_pages(gas, base, n, first_gfn=300, level=1, prot=3):
    out = b''
    for i in range(n):
        out += gas_map(gas, level, gva(base, i), gfn_low(first_gfn + i), prot)
    return out


def faults(vcpu, base, n, write=True, user=True):
    return b''.join(fault(vcpu, gva(base, i), write, user) for i in range(n))


def seeds():
    s = {}
    s['00-shadow-basic'] = (config(audit=AUDIT_EVERY_OP) + data_pages(0, GVA_0, 6) + faults(0, GVA_0, 6) +
                           faults(2, GVA_0, 3, write=False) + access(0, gva(GVA_0, 1), True, 3, 16, 0x1122) +
                           access(0, gva(GVA_0, 1), False, 3, 16) + access(2, gva(GVA_0, 2), False, 0, 5) +
                           translate(0, gva(GVA_0, 1), 2) + translate(1, gva(GVA_0, 1)) + enter(0) + enter(1))
    s['01-shadow-large'] = (config(audit=AUDIT_EVERY_OP) + gas_map(0, 2, gva(GVA_2M, 1), gfn_low(512)) +
                           gas_map(0, 3, gva(GVA_1G, 0), gfn_layout(L_SLOT0, 0)) +
                           gas_map(1, 2, gva(GVA_HIGH, 0), gfn_low(1024), 1) +
                           fault(0, gva(GVA_2M, 1), True, True, low=0x40) + fault(0, gva(GVA_1G, 3), True) +
                           fault(1, gva(GVA_HIGH, 0)) + access(0, gva(GVA_2M, 1), True, 2, 0x100, 7) +
                           access(1, gva(GVA_HIGH, 0), False, 3, 8) + gas_unmap(0, 2, gva(GVA_2M, 1)) +
                           fault(0, gva(GVA_2M, 1), True) + translate(0, gva(GVA_1G, 3)))
    s['02-shadow-pte-writes'] = (config(audit=AUDIT_EVERY_OP) + data_pages(0, GVA_4K, 4) + faults(0, GVA_4K, 4) +
                                guest_write(gfn_pool(0, 0), 1, 0, 0) +       # root entry rewritten
                                guest_write(gfn_pool(0, 3), 0, 6, 0x1234, anywhere=5) +  # misaligned
                                guest_write(gfn_pool(0, 2), 7, 4, 0xff) + faults(0, GVA_4K, 4) +
                                gas_unmap(0, 1, gva(GVA_4K, 2)) + fault(0, gva(GVA_4K, 2), True) +
                                guest_write(gfn_pool(0, 3), 3, 7, 0x0123456789abcdef) +
                                guest_read(gfn_pool(0, 0)) + faults(0, GVA_4K, 4, write=False))
    s['03-shadow-emulated'] = (config(audit=AUDIT_EVERY_OP) + gas_map(0, 1, gva(GVA_3G, 0), gfn_pool(0, 0), 1) +
                              gas_map(0, 1, gva(GVA_3G, 1), gfn_pool(0, 2), 3) +
                              data_pages(0, GVA_0, 2) + faults(0, GVA_0, 2) + fault(0, gva(GVA_3G, 0), True) +
                              access(0, gva(GVA_3G, 0), True, 3, 8 * 300, 0) +
                              access(0, gva(GVA_3G, 1), True, 3, 8 * 5, 0x5003) + faults(0, GVA_0, 2) +
                              access(0, gva(GVA_3G, 0), False, 3, 0))
    z = config() + data_pages(0, GVA_0, 5) + data_pages(1, GVA_512G, 3, 700)
    for mode, rounds in ((HOLD, 0), (RESTART, 3), (GENERATION, 0), (RESTART, 0)):
        z += faults(0, GVA_0, 5) + faults(1, GVA_512G, 3) + zap_all(mode, rounds) + fault(0, gva(GVA_0, 0))
    s['04-zap-all'] = z + enter(0) + enter(1) + faults(0, GVA_0, 5)
    s['05-fast-zap'] = (config(batch1=True) + data_pages(0, GVA_0, 8) + faults(0, GVA_0, 8) + faults(2, GVA_0, 8) +
                       fast_zap(1) + fault(0, gva(GVA_0, 1), True) + fast_zap(2) + fault(2, gva(GVA_0, 2)) +
                       fast_zap(0) + translate(0, gva(GVA_0, 1)) + enter(0) + faults(0, GVA_0, 8) +
                       fast_zap(1) + fast_zap(1) + fast_zap(2))
    m = config() + slot_create(1, L_2048x512) + data_pages(0, GVA_0, 4) + data_pages(0, GVA_2M, 4, 2048 + 10)
    for strat in (S_ZAP_ALL, S_FAST_ZAP, S_HASH_WALK, S_RMAP_REBUILD):
        m += faults(0, GVA_0, 4) + faults(0, GVA_2M, 4) + memslot_flush(0, strat) + memslot_flush(1, strat)
    s['06-memslot-flush'] = m + memslot_flush(3, S_HASH_WALK) + faults(0, GVA_2M, 4)
    s['07-slot-lifecycle'] = (config(strategy=S_HASH_WALK) + slot_create(1, L_2048x512) +
                             data_pages(0, GVA_2M, 4, 2048) + faults(0, GVA_2M, 4) +
                             slot_move(1, L_8192x1024) + faults(0, GVA_2M, 4) + slot_move(1, L_2048x512) +
                             faults(0, GVA_2M, 4) + slot_flags(1, LOG) + faults(0, GVA_2M, 4) + dirty_log(1) +
                             access(0, gva(GVA_2M, 1), True, 3, 0, 9) + dirty_log(1) + slot_flags(1, 0) +
                             dirty_log(1) + flush_strategy(S_RMAP_REBUILD) + slot_delete(1) +
                             faults(0, GVA_2M, 4) + slot_create(1, L_2048x512, LOG) + faults(0, GVA_2M, 4) +
                             slot_create(2, L_OVERLAP0) + slot_delete(3))
    # The seed's scenario: the guest's CR3 at gfn 64 lives in slot 0, which goes away and comes
    # back; with every flush strategy but RMAP_ONLY the audit stays clean.
    seed = config(strategy=S_RMAP_REBUILD, audit=AUDIT_EVERY_OP) + data_pages(0, GVA_0, 4) + faults(0, GVA_0, 4)
    for strat in (S_RMAP_REBUILD, S_HASH_WALK, S_FAST_ZAP, S_ZAP_ALL):
        seed += flush_strategy(strat) + slot_delete(0) + fault(0, gva(GVA_0, 0)) + slot_create(0, L_SLOT0)
        seed += data_pages(0, GVA_0, 4) + faults(0, GVA_0, 4) + fast_zap(2)
    s['08-seed-slot-delete'] = seed
    s['09-notifier'] = (config() + slot_create(1, L_512) + data_pages(0, GVA_0, 6) + faults(0, GVA_0, 6) +
                       notifier(0, (300 * 4096 + 4096) // 64, 4096 // 16) + faults(0, GVA_0, 6) +
                       notifier(0, 0, 0xfffe) + notifier(1, 10, 100) + notifier(3, 0, 10) +
                       faults(0, GVA_0, 6) + notifier_release() + faults(0, GVA_0, 6, write=False))
    rec = config(budget=1) + max_pages(0)
    for i in range(20):
        rec += gas_map(i % 2, 1, gva(GVA_512G if i % 2 else GVA_1G, i), gfn_low(300 + i)) + fault(i % 3, gva(GVA_512G if i % 2 else GVA_1G, i), True)
    s['10-page-limit'] = rec + max_pages(4) + max_pages(1) + max_pages(7) + faults(0, GVA_1G, 5)
    s['11-vcpus-cr3'] = (config() + data_pages(0, GVA_0, 3) + data_pages(1, GVA_0, 3, 800) + faults(0, GVA_0, 3) +
                        set_cr3(0, gas=1) + faults(0, GVA_0, 3) + access(0, gva(GVA_0, 1), False) +
                        set_cr3(1, gfn_b=gfn_far(40)) + fault(1, gva(GVA_0, 0)) + vcpu_recreate(1) +
                        faults(1, GVA_0, 3) + vcpu_recreate(0) + zap_all(HOLD) + vcpu_recreate(2) + enter(1))
    api = config() + data_pages(0, GVA_0, 6) + faults(0, GVA_0, 6) + faults(1, GVA_0, 6)
    for action, arg in ((0, 0), (1, 0), (1, 3), (2, 0), (2, 1 | (2 << 1)), (3, 0 | (300 << 4)), (3, 1 | 4),
                        (4, 0), (7, 0), (5, 0), (6, 0)):
        api += strategy_api(action, arg) + faults(0, GVA_0, 2)
    s['12-strategy-api'] = api
    d = config(direct=True) + slot_create(1, L_2048x512) + slot_create(2, L_1G)
    for g in (0, 5, 513, 1023, 2047, 2100):
        d += fault(0, gfn_low(g), True)
    d += fault(1, gfn_layout(L_1G, 7), True) + fault(1, gfn_layout(L_1G, 1 << 10)) + fault(2, gfn_far(100))
    d += access(0, gfn_low(513), True, 3, 64, 77) + access(0, gfn_low(513), False, 3, 64)
    d += access(1, gfn_layout(L_1G, 9), True, 1, 2, 5) + translate(0, gfn_low(513), 2)
    s['13-direct-basic'] = d + zap_all(GENERATION) + fault(0, gfn_low(5), True)
    s['14-direct-dirty'] = (config(direct=True) + slot_create(1, L_2048x512) + fault(0, gfn_low(2050), True) +
                           slot_flags(1, LOG) + fault(0, gfn_low(2050), True) + fault(0, gfn_low(2051), True) +
                           access(0, gfn_low(2052), True, 3, 0, 1) + dirty_log(1) + dirty_log(1) +
                           memslot_flush(1, S_HASH_WALK) + slot_flags(1, 0) + fault(0, gfn_low(2050), True) +
                           dirty_log(1) + dirty_log(0))
    s['15-direct-slots'] = (config(direct=True, strategy=S_ZAP_ALL) + slot_create(1, L_8192x1024) +
                           fault(0, gfn_low(0), True) + fault(0, gfn_layout(L_8192x1024, 600), True) +
                           slot_move(1, L_9216x4096) + fault(0, gfn_layout(L_9216x4096, 600), True) +
                           notifier(1, 0, 0x4000) + fault(0, gfn_layout(L_9216x4096, 600)) + slot_delete(1) +
                           fault(0, gfn_layout(L_9216x4096, 600)) + slot_create(3, L_MISALIGNED) +
                           fault(0, gfn_layout(L_MISALIGNED, 50), True) + slot_move(3, L_TINY) +
                           slot_create(2, L_TINY) + slot_move(0, L_13312) + fault(0, gfn_low(5)))
    s['16-readonly'] = (config() + slot_create(1, L_2048x512, RO) + gas_map(0, 1, gva(GVA_0, 0), gfn_low(2049)) +
                       fault(0, gva(GVA_0, 0), True) + fault(0, gva(GVA_0, 0)) + access(0, gva(GVA_0, 0), False) +
                       access(0, gva(GVA_0, 0), True) + slot_flags(1, 0) + slot_flags(1, RO | LOG) +
                       guest_write(gfn_low(2049), 0, 0, 1) + dirty_log(1))
    s['17-today-small-hash'] = (config(today=True, small_hash=True, batch1=True, strategy=S_HASH_WALK) +
                               data_pages(0, GVA_0, 8) + data_pages(1, GVA_2M, 8, 900) + faults(0, GVA_0, 8) +
                               faults(1, GVA_2M, 8) + fast_zap(0) + faults(0, GVA_0, 8) + slot_delete(0) +
                               slot_create(0, L_SLOT0) + faults(1, GVA_2M, 8))
    s['18-restart-bounded'] = (config() + data_pages(0, GVA_0, 10) + faults(0, GVA_0, 10) + zap_all(RESTART, 1) +
                              faults(0, GVA_0, 10) + zap_all(RESTART, 63) + faults(2, GVA_0, 10) + zap_all(HOLD))
    # Every lock-break path without a second thread: each needbreak check says "break".
    br = config(breaks=BREAK_ALWAYS, batch1=True, audit=AUDIT_EVERY_OP) + slot_create(1, L_2048x512) + data_pages(0, GVA_0, 6)
    br += data_pages(1, GVA_2M, 4, 2048 + 10)
    for step in (zap_all(RESTART), zap_all(GENERATION), zap_all(RESTART, 2), fast_zap(0), fast_zap(1) + fast_zap(2),
                 memslot_flush(1, S_HASH_WALK), memslot_flush(0, S_RMAP_REBUILD), memslot_flush(0, S_FAST_ZAP),
                 notifier(0, (300 * 4096) // 64, 0x4000), slot_flags(1, LOG), slot_move(1, L_8192x1024)):
        br += faults(0, GVA_0, 6) + faults(1, GVA_2M, 4) + step
    s['21-forced-breaks'] = br
    s['22-forced-breaks-leaf-first'] = (config(breaks=BREAK_3, batch1=True, budget=1, audit=AUDIT_4) +
                                        data_pages(0, GVA_0, 8) + faults(0, GVA_0, 8) + faults(2, GVA_0, 8) +
                                        fast_zap(0) + faults(0, GVA_0, 8) + zap_all(RESTART) +
                                        faults(0, GVA_0, 8) + memslot_flush(0, S_HASH_WALK) + faults(0, GVA_0, 8))
    # A fault racing every zap: it runs inside the zap's lock breaks (fuzz_racer.c).
    for name, direct, race, breaks in (('24-racing-fault-shadow', False, 1, BREAK_NONE),
                                       ('25-racing-fault-direct', True, 3, BREAK_3)):
        rc = config(direct=direct, race=race, breaks=breaks, batch1=True, audit=AUDIT_4) + slot_create(1, L_2048x512)
        if direct:
            pages = b''.join(fault(0, gfn_low(2048 + 37 * i), True) for i in range(12))
        else:
            rc += data_pages(0, GVA_0, 4) + b''.join(gas_map(0, 1, gva(GVA_2M, i), gfn_low(2048 + i)) for i in range(8))
            pages = faults(0, GVA_0, 4) + faults(1, GVA_2M, 8)
        for step in (zap_all(RESTART), zap_all(GENERATION), zap_all(HOLD), fast_zap(0), fast_zap(1) + fast_zap(2),
                     memslot_flush(1, S_HASH_WALK), memslot_flush(0, S_FAST_ZAP), memslot_flush(1, S_RMAP_REBUILD)):
            rc += pages + step
        s[name] = rc + enter(2) + pages
    # Dirty logging's oracle: every write (vCPU or host) shows in the slot's next dirty log,
    # also a write through a translation the log's write-protection has to take away.
    dl = config(audit=AUDIT_EVERY_OP) + slot_create(1, L_2048x512, LOG)
    dl += gas_map(0, 1, gva(GVA_0, 0), gfn_low(2050)) + gas_map(0, 1, gva(GVA_0, 1), gfn_low(2051))
    for i in range(3):
        dl += access(0, gva(GVA_0, 0), True, 3, 8 * i, 5 + i) + access(1, gva(GVA_0, 1), True, 2, 4, i)
        dl += guest_write(gfn_low(2052), i, 0, i) + dirty_log(1) + (enter(0) if i == 1 else b'')
    dl += slot_flags(1, 0) + access(0, gva(GVA_0, 0), True) + slot_flags(1, LOG)
    s['23-dirty-log'] = dl + access(0, gva(GVA_0, 0), True, 3, 16, 9) + dirty_log(1) + dirty_log(1)
    # The first bug the fuzzer found (README in crashes/): a today-profile 2 MiB spte over the
    # guest's own root table.
    s['today-profile-large-spte-over-shadowed-table'] = bytes.fromhex('3a0004 00ff 6000 0003 00ff 60'.replace(' ', ''))
    # A fuzzer find: vCPU 0 stores through gva 0 into the guest table mapping gva 0, which is unsync;
    # the stale translation that leaves is allowed until its next CR3 load.
    s['18-unsync-table-store-stale-tlb'] = bytes.fromhex(
        '040000010101040000000002020803040000000040030803090007000000000500002100000000090106000104000000'
        '000000000000060204080000000000000000000000010709001300000800060000000000000009010600010400010000'
        '000000000006020408010000010000000000000000090106000104000000000000000000060204080000000000000000'
        '000000010709001300000800060000000000000009010600010400010000000000000006020408010000010000000000'
        '000013010a00090000000013011301')
    # A fuzzer find (minimized): a trapped 4-byte store at offset 5 of a guest table, across two
    # gptes, clears the present bit of the second. KVM takes it for the first gpte only
    # (mmu_pte_write_fetch_gpte) and keeps the second's spte, as the library does; the audit
    # flagged that, so the harness makes such a store as two (fuzz_ops.c, OP_GUEST_WRITE).
    s['30-pte-store-straddling-two-gptes'] = bytes.fromhex('04000400000600022c01030800060002800600030005805b')
    # A fuzzer find (minimized, 3.11; and the same bytes under the today profile): vCPU 1 reads
    # gva 4K, stores into the unsync table behind it, dirty logging write-protects the slot, vCPU
    # 1 reads again (TLB), vCPU 0's root load syncs the table and drops gva 4K's spte. 3.11 flushes
    # only vCPU 0's TLB there (kvm->tlbs_dirty), which the audit took for a stale TLB entry.
    tlbs_dirty = bytes.fromhex('04000400000000002f0103040ac10001022103030400000700000300030800000000000b010409010300010000000000000000000009010707000800ffffffffffffffffffff000409000300010a0109010300010000000000400000000009000700')
    s['32-311-sync-drop-leaves-other-tlb'] = tlbs_dirty
    s['32-today-sync-drop-leaves-other-tlb'] = bytes([tlbs_dirty[0] | 2]) + tlbs_dirty[1:]
    s.update(new_kind_seeds())
    # Two random mixes, one per mode, from a fixed seed.
    for name, direct, seedv in (('19-random-shadow', False, 1), ('20-random-direct', True, 2)):
        rnd = random.Random(seedv)
        out = bytearray(config(direct=direct, breaks=BREAK_16 if direct else BREAK_NONE))
        out += data_pages(0, GVA_0, 4) if not direct else b''
        for _ in range(150):
            out.append(rnd.randrange(OP_COUNT))
            out += bytes(rnd.randrange(256) for _ in range(rnd.randrange(2, 12)))
        s[name] = bytes(out)
    return s


def new_kind_seeds():
    """The kinds chosen by argument bits (fuzz_ops.h enum fuzz_kind), each in both profiles and,
    where it applies, both modes."""
    s = {}
    for era, today in (('311', False), ('today', True)):
        # A store through gva 3G into the table that maps gva 0..16K (pool frame 3) goes
        # untrapped once that table is unsync: gva 4K's translation may be stale until CR3 is
        # loaded again. The MOV CR3 (to the same CR3, and today back to a cached root) syncs it
        # at the next entry: the reads after it are checked. INVLPG syncs one address.
        st = (config(today=today, audit=AUDIT_EVERY_OP) + data_pages(0, GVA_0, 4) +
              data_pages(1, GVA_0, 2, 800) + gas_map(0, 1, gva(GVA_3G, 0), gfn_pool(0, 3)) +
              faults(0, GVA_0, 4) + faults(1, GVA_0, 4))
        for n, (vcpu, step) in enumerate(((0, load_cr3(0, gas=0)), (0, invlpg(0, gva(GVA_0, 1)) + load_cr3(0, gas=0)),
                                          (0, load_cr3(0, gas=1) + load_cr3(0, gas=0)),
                                          (0, load_cr3(0, gas=1) + mmu_reload(0) + load_cr3(0, gas=0) + mmu_reload(0)),
                                          (1, load_cr3(1, gas=0) + mmu_reload(1)))):
            st += access(vcpu, gva(GVA_0, 1), True, 3, 0, 0x1100 + n) + access(vcpu, gva(GVA_0, 1), False)
            st += access(vcpu, gva(GVA_3G, 0), True, 3, 8 * 1, ((310 + n) << 12) | 7)
            st += access(vcpu, gva(GVA_0, 1), False) + step + access(vcpu, gva(GVA_0, 1), False)
            st += access(0, gva(GVA_0, 2), False) + enter(1) + access(1, gva(GVA_0, 1), False)
        s['26-%s-mov-cr3-sync' % era] = st + mmu_reload(2) + invlpg(2, gva(GVA_0, 0)) + fast_zap(0) + mmu_reload(0)
        # MOV CR3 among roots, cached (today) or not (3.11); roots loaded at entry; INVLPG of
        # mapped, unmapped and rewritten addresses; a zap with roots cached.
        rc = config(today=today, batch1=True, audit=AUDIT_4) + data_pages(0, GVA_0, 4) + data_pages(1, GVA_2M, 4, 900)
        rc += mmu_reload(0) + mmu_reload(1) + mmu_reload(2) + faults(0, GVA_0, 4) + faults(1, GVA_2M, 4)
        for g in (1, 0, 1, 1, 0):
            rc += load_cr3(0, gas=g) + mmu_reload(0) + faults(0, GVA_2M if g else GVA_0, 2)
        rc += load_cr3(2, gfn_b=gfn_pool(0, 1)) + mmu_reload(2) + load_cr3(2, gfn_b=gfn_far(9)) + mmu_reload(2)
        rc += load_cr3(2, gas=1) + invlpg(2, gva(GVA_2M, 0)) + invlpg(0, gva(GVA_0, 7))
        rc += gas_unmap(0, 1, gva(GVA_0, 1)) + invlpg(0, gva(GVA_0, 1)) + fault(0, gva(GVA_0, 1))
        rc += zap_all(HOLD) + load_cr3(0, gas=1) + load_cr3(0, gas=0) + mmu_reload(0) + fast_zap(1) + fast_zap(2)
        rc += load_cr3(0, gas=1) + enter(0) + mmu_reload(0) + faults(0, GVA_2M, 4) + set_cr3(0, gas=0)
        rc += faults(0, GVA_0, 4) + load_cr3(0, gas=1) + bump_forget() + load_cr3(0, gas=0) + faults(0, GVA_0, 4)
        s['27-%s-roots-invlpg' % era] = rc + vcpu_recreate(0) + load_cr3(0, gas=1) + mmu_reload(0)
        # The memslots' generation started near the MMIO generation's wrap (3.11: 3 commits
        # away; today: 1 and 2 publications away), MMIO sptes made, then slot updates past the
        # wrap; the odd and bit-63 generations are refused, and any once a page exists.
        mm = config(today=today, audit=AUDIT_EVERY_OP) + memslots_gen(G_149) + memslots_gen(G_BIT63)
        mm += memslots_gen(G_146 if not today else G_WRAP4)
        mm += gas_map(0, 1, gva(GVA_0, 0), gfn_far(40)) + gas_map(0, 1, gva(GVA_0, 1), gfn_low(300))
        mm += fault(0, gva(GVA_0, 0)) + fault(0, gva(GVA_0, 1), True) + memslots_gen(G_0)
        for i in range(4):
            mm += slot_create(1, L_TINY) + fault(0, gva(GVA_0, 0)) + fault(0, gva(GVA_0, 0)) + slot_delete(1)
            mm += access(0, gva(GVA_0, 1), True, 3, 0, i) + access(0, gva(GVA_0, 0), False)
        s['28-%s-memslots-gen-wrap' % era] = mm + zap_all(HOLD) + enter(0) + memslots_gen(G_3WRAP2)
        # A fuzzer find, written out: an MMIO spte (gva 8K, gfn 20002 in no slot) in a table the
        # guest then unsyncs by a store; a slot comes over gfn 20002; the sync after the MOV CR3
        # marks the MMIO spte again with the current generation, as KVM's sync_mmio_spte does,
        # which the audit took for a library bug.
        mr = (config(today=today, audit=AUDIT_EVERY_OP) + data_pages(0, GVA_0, 2) +
              gas_map(0, 1, gva(GVA_0, 2), gfn_layout(L_20000x7, 2)) + gas_map(0, 1, gva(GVA_3G, 0), gfn_pool(0, 3)) +
              faults(0, GVA_0, 2) + access(0, gva(GVA_0, 2), False) + access(0, gva(GVA_3G, 0), True, 3, 8 * 5, 0) +
              slot_create(1, L_20000x7) + load_cr3(0, gas=0) + mmu_reload(0) + access(0, gva(GVA_0, 2), False))
        s['31-%s-sync-remarks-mmio-over-new-slot' % era] = mr + access(0, gva(GVA_0, 2), True, 3, 0, 5) + dirty_log(1)
    for mode, direct in (('shadow', False), ('direct', True)):
        # The host's page size: 2M then 4K (refused while a 2M spte maps the slot), a host store
        # into pages the guest then reads and faults through (pte prefetch looks them up).
        hl = config(direct=direct, audit=AUDIT_EVERY_OP) + slot_create(1, L_2048x512) + host_level(1, 2)
        if direct:
            pages = b''.join(fault(0, gfn_low(2048 + 7 * i), True) for i in range(4)) + fault(0, gfn_low(2560 - 1))
        else:
            hl += gas_map(0, 2, gva(GVA_2M, 1), gfn_low(2048)) + data_pages(0, GVA_0, 8, 2100)
            pages = fault(0, gva(GVA_2M, 1), True) + faults(0, GVA_0, 8, write=False)
        hl += host_wrote(gfn_low(2100), 0) + host_wrote(gfn_low(2103), 4090) + pages + host_level(1, 1)
        hl += notifier(1, (2048 * 4096 // 64) - (2048 * 4096 // 64) + 4096 // 64, 64) + host_level(1, 1) + pages
        hl += host_level(1, 3) + host_level(3, 2) + host_wrote(gfn_far(100)) + load_cr3(1, gas=1) + mmu_reload(1)
        hl += pfn_hook(4) + pages + pfn_hook(1) + access(0, gfn_low(2050) if direct else gva(GVA_0, 2), True)
        s['29-%s-host-level' % mode] = hl + invlpg(0, gva(GVA_0, 0)) + translate(0, gva(GVA_0, 0)) + pages
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, 'corpus')
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name), 'wb') as fh:
            fh.write(data)
    print('wrote %d seeds to %s' % (len(seeds()), out), file=sys.stderr)


if __name__ == '__main__':
    main()
