"""Private numba kernels: the DRAM controller and device timing model.

Everything here works on plain int64 arrays. One call simulates one controller
(a channel for the host, a rank for rank-level near-memory units). Times are in
DRAM clock cycles.

Conventions (the public wrappers document them too):
- A request is accepted into the controller at most one per cycle, in trace order,
  no earlier than its arrival and only when it has an entry: a read (or, without a
  write buffer, any request) in the transaction queue of ``P_TQ`` entries, a write in
  the write buffer of ``P_WQ`` entries. A request that cannot be accepted holds up
  those behind it. Reads served by forwarding or coalescing need no entry.
- A command may issue in the cycle its request is accepted; one command per cycle
  per controller. A read completes at its last data beat: column + CL + BL/2.
  A write completes when its last data beat is written: column + CWL + BL/2.
- FR-FCFS: accepted requests move from the transaction queue (or write buffer) into
  their bank's command queue (``P_CQ`` entries), oldest first, once there is room and
  the older request to the same line they depend on (read after write, write after
  read or write) has issued. Each bank offers one command: a column command for the
  first queued request that hits the open row, until ``P_HIT_CAP`` column commands
  have gone to that row, then its oldest request's PRE or ACT (DRAMsim3 caps row hits
  at 4 the same way). Among the banks whose command is legal this cycle, the first
  after the bank that issued last wins (round-robin, as DRAMsim3 arbitrates its
  per-bank queues); if none is legal, time jumps to the earliest legal cycle.
- Write buffer (FR-FCFS, ``P_WQ`` > 0): accepted writes wait there, outside the
  command queues, while reads are served. A drain starts when ``P_WHIGH`` writes are
  buffered, when the controller holds no read, or when a waiting read needs a
  buffered write (forwarding off); while it lasts, buffered writes enter the command
  queues and new reads wait in the transaction queue. It stops when at most
  ``P_WLOW`` writes remain and a read waits, when the buffer is empty, or when the
  command queues are empty (every buffered write then waits on a read kept out).
- FCFS: requests are served strictly in acceptance order; a request's commands
  are placed at their earliest legal cycles, and its first command never precedes
  the previous request's first command.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Parameter vector layout.
(P_CL, P_CWL, P_TRCD, P_TRP, P_TRAS, P_TRRD_S, P_TRRD_L, P_TFAW, P_TCCD_S, P_TCCD_L,
 P_TWTR_S, P_TWTR_L, P_TWR, P_TRTP, P_TRFC, P_TREFI, P_TRTRS, P_BURST, P_RANKS,
 P_BANKGROUPS, P_BANKS_PER_GROUP, P_CLOSED, P_TQ, P_CQ, P_COALESCE, P_FORWARD,
 P_FWD_LAT, P_BANKS_PER_BUS, P_BUS_GAP, P_FRFCFS, P_WQ, P_WHIGH, P_WLOW, P_HIT_CAP, N_PARAMS) = range(35)

# Counter vector layout.
C_ACT, C_PRE, C_RD, C_WR, C_REF, C_HITS, C_BUS_BUSY, N_COUNTS = range(8)

# How a request was served.
K_HIT, K_MISS, K_CONFLICT, K_COALESCED, K_FORWARDED = range(5)


# Bank state columns.
B_OPEN_ROW, B_COL_OK, B_PRE_OK, B_NEXT_ACT, B_ACT_REC, B_HITS, N_B = range(7)
# Rank state columns (the last four hold the tFAW window of ACT times).
R_LAST_ACT, R_LAST_COL, R_LAST_RD_COL, R_LAST_WR_END, R_REF_DUE, R_FAW_POS, R_FAW0, N_R = (
    0, 1, 2, 3, 4, 5, 6, 10)
# Bank-group state columns.
G_LAST_ACT, G_LAST_COL, G_LAST_WR_END, N_G = range(4)

NEVER = -(1 << 40)  # "long ago": adding any timing keeps it in the past
FOREVER = 1 << 62


@njit(cache=True)
def _new_state(p):
    n_ranks = p[P_RANKS]
    n_groups = n_ranks * p[P_BANKGROUPS]
    n_banks = n_groups * p[P_BANKS_PER_GROUP]
    bs = np.zeros((n_banks, N_B), np.int64)
    bs[:, B_OPEN_ROW] = -1
    bs[:, B_ACT_REC] = -1
    rs = np.full((n_ranks, N_R), NEVER, np.int64)
    rs[:, R_FAW_POS] = 0
    for r in range(n_ranks):
        # staggered per-rank refresh: rank r first refreshes at (r + 1) * tREFI / ranks
        rs[r, R_REF_DUE] = (r + 1) * p[P_TREFI] // n_ranks if p[P_TREFI] > 0 else FOREVER
    gs = np.full((n_groups, N_G), NEVER, np.int64)
    n_bus = (n_banks + p[P_BANKS_PER_BUS] - 1) // p[P_BANKS_PER_BUS]
    bus = np.zeros((n_bus, 2), np.int64)  # [free cycle, rank that used it last]
    bus[:, 1] = -1
    return bs, rs, gs, bus


# FR-FCFS queue counters: waiting in the transaction queue, in the write buffer, in the
# command queues, reads accepted and not issued, reads waiting for a held write, draining.
CT_TQ, CT_WB, CT_INBQ, CT_RQUEUED, CT_RAW, CT_DRAIN, N_CT = range(7)

# Candidate command of a bank under FR-FCFS.
CMD_NONE, CMD_READ, CMD_WRITE, CMD_PRE, CMD_ACT = range(5)


@njit(cache=True)
def _simulate(bank, row, is_write, arrival, prev_same, p,
              accept, complete, kind, counts, act_rank, act_start, act_end):
    """Simulate one controller; return the number of activations.

    Inputs, shape (n,): ``bank`` (rank-major bank index), ``row``, ``is_write``,
    ``arrival`` cycles, ``prev_same`` (index of the latest earlier request to the
    same line, or -1). Outputs, shape (n,): ``accept``, ``complete`` cycles and
    ``kind`` (K_*). ``counts`` (N_COUNTS,) is added to. Activation records
    (rank, start, end; end -1 if still open) fill ``act_*`` up to their length.
    """
    n = bank.shape[0]
    bs, rs, gs, bus = _new_state(p)
    cl, cwl, trcd, trp, tras = p[P_CL], p[P_CWL], p[P_TRCD], p[P_TRP], p[P_TRAS]
    trrd_s, trrd_l, tfaw = p[P_TRRD_S], p[P_TRRD_L], p[P_TFAW]
    tccd_s, tccd_l, twtr_s, twtr_l = p[P_TCCD_S], p[P_TCCD_L], p[P_TWTR_S], p[P_TWTR_L]
    twr, trtp, trfc, trefi, trtrs = p[P_TWR], p[P_TRTP], p[P_TRFC], p[P_TREFI], p[P_TRTRS]
    burst = p[P_BURST]
    bus_hold = max(burst, p[P_BUS_GAP])
    rtw = cl + burst + 2 - cwl  # read-to-write turnaround on one rank
    groups_per_rank = p[P_BANKGROUPS]
    bpg = p[P_BANKS_PER_GROUP]
    banks_per_rank = groups_per_rank * bpg
    bpb = p[P_BANKS_PER_BUS]
    closed_page = p[P_CLOSED] != 0
    n_banks = bs.shape[0]
    n_ranks = rs.shape[0]
    n_groups = gs.shape[0]
    n_records = act_rank.shape[0]
    # bank -> bank group, rank and data bus, computed once: integer division is slow
    bank_group = np.arange(n_banks) // bpg
    bank_rank = bank_group // groups_per_rank
    bank_bus = np.arange(n_banks) // bpb
    leader = np.full(n, -1, np.int64)
    kind[:] = -1
    complete[:] = -1

    # Closures rather than helper functions: numba then keeps no reference counts
    # on the state arrays in the hot loop.
    def act_ready(b, r, g):
        return max(bs[b, B_NEXT_ACT], rs[r, R_LAST_ACT] + trrd_s, gs[g, G_LAST_ACT] + trrd_l,
                   rs[r, R_FAW0 + rs[r, R_FAW_POS]] + tfaw)

    def bus_ready(b, r, lat):
        d = bank_bus[b]
        free = bus[d, 0]
        if bus[d, 1] >= 0 and bus[d, 1] != r:
            free += trtrs  # rank-to-rank switch on a shared bus
        return free - lat

    def col_ready(b, r, g, write):
        t = max(bs[b, B_COL_OK], rs[r, R_LAST_COL] + tccd_s, gs[g, G_LAST_COL] + tccd_l)
        if write:
            return max(t, rs[r, R_LAST_RD_COL] + rtw, bus_ready(b, r, cwl))
        return max(t, rs[r, R_LAST_WR_END] + twtr_s, gs[g, G_LAST_WR_END] + twtr_l,
                   bus_ready(b, r, cl))

    def do_act(now, b, r, g, open_row):
        k = counts[C_ACT]
        counts[C_ACT] = k + 1
        bs[b, B_OPEN_ROW] = open_row
        bs[b, B_COL_OK] = now + trcd
        bs[b, B_PRE_OK] = now + tras
        bs[b, B_ACT_REC] = k
        bs[b, B_HITS] = 0
        rs[r, R_LAST_ACT] = now
        pos = rs[r, R_FAW_POS]
        rs[r, R_FAW0 + pos] = now
        rs[r, R_FAW_POS] = (pos + 1) & 3
        gs[g, G_LAST_ACT] = now
        if k < n_records:
            act_rank[k] = r
            act_start[k] = now
            act_end[k] = -1

    def do_pre(now, b):
        counts[C_PRE] += 1
        bs[b, B_OPEN_ROW] = -1
        bs[b, B_NEXT_ACT] = max(bs[b, B_NEXT_ACT], now + trp)
        k = bs[b, B_ACT_REC]
        if k < n_records:
            act_end[k] = now

    def do_col(now, b, r, g, write):
        bs[b, B_HITS] += 1
        rs[r, R_LAST_COL] = now
        gs[g, G_LAST_COL] = now
        if write:
            counts[C_WR] += 1
            lat = cwl
            end = now + cwl + burst
            rs[r, R_LAST_WR_END] = end
            gs[g, G_LAST_WR_END] = end
            bs[b, B_PRE_OK] = max(bs[b, B_PRE_OK], end + twr)
        else:
            counts[C_RD] += 1
            lat = cl
            end = now + cl + burst
            rs[r, R_LAST_RD_COL] = now
            bs[b, B_PRE_OK] = max(bs[b, B_PRE_OK], now + trtp)
        d = bank_bus[b]
        bus[d, 0] = now + lat + bus_hold
        bus[d, 1] = r
        counts[C_BUS_BUSY] += burst
        if closed_page:
            # auto-precharge as soon as tRAS, tRTP and write recovery allow
            do_pre(bs[b, B_PRE_OK], b)
        return end

    def refresh_until(t):
        """Run every refresh due at or before ``t``, earliest first; return the next due cycle."""
        for _ in range(1 << 40):
            r = 0
            for q in range(1, n_ranks):
                if rs[q, R_REF_DUE] < rs[r, R_REF_DUE]:
                    r = q
            due = rs[r, R_REF_DUE]
            if due > t:
                return due
            # precharge the rank, refresh it; banks activate again after tRFC
            start = due
            for b in range(r * banks_per_rank, (r + 1) * banks_per_rank):
                if bs[b, B_OPEN_ROW] >= 0:
                    do_pre(max(due, bs[b, B_PRE_OK]), b)
                start = max(start, bs[b, B_NEXT_ACT])
            counts[C_REF] += 1
            for b in range(r * banks_per_rank, (r + 1) * banks_per_rank):
                bs[b, B_NEXT_ACT] = start + trfc
            rs[r, R_REF_DUE] = due + trefi
        return FOREVER

    dep = np.full(n, -1, np.int64)  # older request to the same line that must issue first

    def set_dep(i):
        """The latest earlier write to i's line, or for a write after a read, that read's access."""
        j = prev_same[i]
        if j < 0:
            dep[i] = -1
        elif is_write[j]:
            dep[i] = j
        elif is_write[i] and leader[j] >= 0:
            dep[i] = leader[j]
        else:
            dep[i] = dep[j]

    def merge(i, now):
        """Serve read ``i`` without a DRAM access if a pending request allows; True if so."""
        j = prev_same[i]
        if j < 0 or is_write[i]:
            return False
        if not is_write[j]:
            lead = leader[j]
            if p[P_COALESCE] != 0 and lead >= 0 and (complete[lead] < 0 or complete[lead] > now):
                kind[i] = K_COALESCED
                leader[i] = lead
                return True
        w = dep[i]  # for a read: the latest earlier write to its line, or -1
        if p[P_FORWARD] != 0 and w >= 0 and (complete[w] < 0 or complete[w] > now):
            kind[i] = K_FORWARDED
            complete[i] = now + p[P_FWD_LAT]
            return True
        return False

    next_due = refresh_until(-1)
    last_acc = NEVER

    if p[P_FRFCFS] == 0:
        # FCFS: place each request's commands at their earliest legal cycles, in order.
        window = p[P_TQ]
        # column cycles of the last ``window`` queued requests: an entry frees at its column
        ring = np.full(window, NEVER, np.int64)
        ring_pos = 0
        floor = 0
        for i in range(n):
            t_acc = max(arrival[i], last_acc + 1)
            set_dep(i)
            if merge(i, t_acc):
                accept[i] = t_acc
                last_acc = t_acc
                continue
            t_acc = max(t_acc, ring[ring_pos])
            accept[i] = t_acc
            last_acc = t_acc
            leader[i] = i
            b = bank[i]
            g = bank_group[b]
            r = bank_rank[b]
            start = max(t_acc, floor)
            if start >= next_due:
                next_due = refresh_until(start)
            open_row = bs[b, B_OPEN_ROW]
            if open_row == row[i]:
                kind[i] = K_HIT
                counts[C_HITS] += 1
                first = -1
            else:
                if open_row >= 0:
                    kind[i] = K_CONFLICT
                    first = max(start, bs[b, B_PRE_OK])
                    do_pre(first, b)
                    t_act = max(first, act_ready(b, r, g))
                else:
                    kind[i] = K_MISS
                    t_act = max(start, act_ready(b, r, g))
                    first = t_act
                do_act(t_act, b, r, g, row[i])
            t_col = max(start, col_ready(b, r, g, is_write[i]))
            if first < 0:
                first = t_col
            complete[i] = do_col(t_col, b, r, g, is_write[i])
            floor = first
            ring[ring_pos] = t_col
            ring_pos = (ring_pos + 1) % window
    else:
        # FR-FCFS, event driven: each step issues one command or jumps to the next event.
        cq = p[P_CQ]
        tq_cap = p[P_TQ]
        wq_cap = p[P_WQ]
        w_high = p[P_WHIGH]
        w_low = p[P_WLOW]
        hit_cap = p[P_HIT_CAP]
        buffered = wq_cap > 0
        bq = np.empty(n_banks * cq, np.int64)  # per-bank command queues, oldest first
        bq_n = np.zeros(n_banks, np.int64)
        tq = np.empty(tq_cap, np.int64)  # the transaction queue: waiting for command-queue room
        wb = np.empty(max(wq_cap, 1), np.int64)  # the write buffer
        held = np.zeros(n, np.bool_)  # in the write buffer
        raw_readers = np.zeros(n, np.int64)  # reads waiting in tq for this held write
        ct = np.zeros(N_CT, np.int64)
        queued = 0
        cand_i = np.zeros(n_banks, np.int64)
        cand_slot = np.zeros(n_banks, np.int64)
        cand_cmd = np.zeros(n_banks, np.int64)
        # bank-specific part of each bank's candidate command's earliest cycle
        cand_bt = np.full(n_banks, FOREVER, np.int64)
        # per-command-type parts: [cmd * n_ranks + r], [cmd * n_groups + g], [cmd * n_bus_ranks + bus * n_ranks + r]
        n_bus = bus.shape[0]
        part_r = np.full(5 * n_ranks, NEVER, np.int64)
        part_g = np.full(5 * n_groups, NEVER, np.int64)
        part_bus = np.full(5 * n_bus * n_ranks, NEVER, np.int64)
        key_shift = 35  # key = cycles from now << 35 | round-robin distance of the bank
        max_wait = (1 << 28) - 1

        def eligible(i):
            return dep[i] < 0 or complete[dep[i]] >= 0

        def movable(i):
            """May accepted request ``i`` enter its bank's command queue now? Only once what it
            depends on has issued, so a command queue never holds a request that cannot go."""
            if not eligible(i):
                return False
            if buffered:
                return (ct[CT_DRAIN] != 0) == is_write[i]
            return True

        def enter(i):
            b = bank[i]
            bq[b * cq + bq_n[b]] = i
            bq_n[b] += 1
            ct[CT_INBQ] += 1

        def move_tq(s):
            i = tq[s]
            for u in range(s, ct[CT_TQ] - 1):
                tq[u] = tq[u + 1]
            ct[CT_TQ] -= 1
            enter(i)

        def move_wb(s):
            i = wb[s]
            for u in range(s, ct[CT_WB] - 1):
                wb[u] = wb[u + 1]
            ct[CT_WB] -= 1
            held[i] = False
            ct[CT_RAW] -= raw_readers[i]
            raw_readers[i] = 0
            enter(i)

        def refill(b):
            """Move the oldest movable waiting requests of bank ``b`` into its command queue."""
            s = 0
            while s < ct[CT_TQ] and bq_n[b] < cq:
                if bank[tq[s]] == b and movable(tq[s]):
                    move_tq(s)
                else:
                    s += 1
            s = 0
            while s < ct[CT_WB] and bq_n[b] < cq:
                if bank[wb[s]] == b and movable(wb[s]):
                    move_wb(s)
                else:
                    s += 1

        def update_candidate(b):
            """Bank ``b``'s next command: its first row hit, else its first request's PRE or ACT."""
            base = b * cq
            if bq_n[b] == 0:
                cand_cmd[b] = CMD_NONE
                cand_i[b] = 0
                cand_bt[b] = FOREVER
                return
            open_row = bs[b, B_OPEN_ROW]
            # after hit_cap column commands to one row, the oldest request decides
            capped = hit_cap > 0 and open_row >= 0 and bs[b, B_HITS] >= hit_cap
            last = 1 if capped else bq_n[b]
            for s in range(last):
                i = bq[base + s]
                if row[i] == open_row:
                    cand_i[b] = i
                    cand_slot[b] = s
                    cand_cmd[b] = CMD_WRITE if is_write[i] else CMD_READ
                    cand_bt[b] = bs[b, B_COL_OK]
                    return
            if open_row >= 0:
                cand_cmd[b] = CMD_PRE
                cand_bt[b] = bs[b, B_PRE_OK]
            else:
                cand_cmd[b] = CMD_ACT
                cand_bt[b] = bs[b, B_NEXT_ACT]
            cand_i[b] = bq[base]
            cand_slot[b] = 0

        def refill_all():
            """Move every movable waiting request that has room, oldest first."""
            s = 0
            while s < ct[CT_TQ]:
                if bq_n[bank[tq[s]]] < cq and movable(tq[s]):
                    move_tq(s)
                else:
                    s += 1
            s = 0
            while s < ct[CT_WB]:
                if bq_n[bank[wb[s]]] < cq and movable(wb[s]):
                    move_wb(s)
                else:
                    s += 1
            for bb in range(n_banks):
                update_candidate(bb)

        def update_drain():
            """Start or stop a write drain until neither rule fires (at most start, stop, start)."""
            for _ in range(6):
                n_held = ct[CT_WB]
                if ct[CT_DRAIN] != 0:
                    # stop at the low watermark once reads wait (unless one waits for a held
                    # write), when the buffer is empty, or when nothing is queued: then every
                    # held write waits on a read that the drain keeps out
                    if not (n_held == 0 or ct[CT_INBQ] == 0
                            or (n_held <= w_low and ct[CT_TQ] > 0 and ct[CT_RAW] == 0)):
                        return
                    ct[CT_DRAIN] = 0
                else:
                    if not (n_held > 0 and (n_held >= w_high or ct[CT_RAW] > 0 or ct[CT_RQUEUED] == 0)):
                        return
                    ct[CT_DRAIN] = 1
                refill_all()
            raise RuntimeError("pimsim write-drain rules do not settle")

        nxt = 0
        now = 0
        reuse = False  # the last scan still holds: nothing changed but the clock
        blocked = False
        rr_last = n_banks - 1  # the bank that issued last: round-robin starts after it
        best_t = FOREVER
        best_b = -1
        while nxt < n or queued > 0:
            if not reuse:
                if now >= next_due:
                    next_due = refresh_until(now)
                    for b in range(n_banks):
                        update_candidate(b)
                # accept at most one request this cycle, in trace order
                blocked = False
                if nxt < n and max(arrival[nxt], last_acc + 1) <= now:
                    i = nxt
                    set_dep(i)
                    if merge(i, now):
                        accept[i] = now
                        last_acc = now
                        nxt += 1
                    else:
                        to_wb = buffered and is_write[i]
                        if (ct[CT_WB] < wq_cap) if to_wb else (ct[CT_TQ] < tq_cap):
                            accept[i] = now
                            leader[i] = i
                            last_acc = now
                            nxt += 1
                            queued += 1
                            if not is_write[i]:
                                ct[CT_RQUEUED] += 1
                            b = bank[i]
                            if movable(i) and bq_n[b] < cq:
                                enter(i)
                                if cand_cmd[b] == CMD_NONE or cand_cmd[b] == CMD_PRE:
                                    update_candidate(b)
                            elif to_wb:
                                wb[ct[CT_WB]] = i
                                ct[CT_WB] += 1
                                held[i] = True
                            else:
                                tq[ct[CT_TQ]] = i
                                ct[CT_TQ] += 1
                                if buffered and dep[i] >= 0 and held[dep[i]]:
                                    raw_readers[dep[i]] += 1
                                    ct[CT_RAW] += 1
                        else:
                            blocked = True
                if buffered:
                    update_drain()
                for r in range(n_ranks):
                    part_r[CMD_ACT * n_ranks + r] = max(rs[r, R_LAST_ACT] + trrd_s,
                                                        rs[r, R_FAW0 + rs[r, R_FAW_POS]] + tfaw)
                    c = rs[r, R_LAST_COL] + tccd_s
                    part_r[CMD_READ * n_ranks + r] = max(c, rs[r, R_LAST_WR_END] + twtr_s)
                    part_r[CMD_WRITE * n_ranks + r] = max(c, rs[r, R_LAST_RD_COL] + rtw)
                for g in range(n_groups):
                    part_g[CMD_ACT * n_groups + g] = gs[g, G_LAST_ACT] + trrd_l
                    c = gs[g, G_LAST_COL] + tccd_l
                    part_g[CMD_READ * n_groups + g] = max(c, gs[g, G_LAST_WR_END] + twtr_l)
                    part_g[CMD_WRITE * n_groups + g] = c
                for d in range(n_bus):
                    for r in range(n_ranks):
                        free = bus[d, 0]
                        if bus[d, 1] >= 0 and bus[d, 1] != r:
                            free += trtrs  # rank-to-rank switch on a shared bus
                        part_bus[(CMD_READ * n_bus + d) * n_ranks + r] = free - cl
                        part_bus[(CMD_WRITE * n_bus + d) * n_ranks + r] = free - cwl
                # the best command: the earliest, then round-robin over the banks from the
                # one after the last to issue; one integer key per bank keeps this loop
                # free of branches
                best_key = max_wait << key_shift
                for b in range(n_banks):
                    cmd = cand_cmd[b]
                    if cmd == CMD_NONE:
                        continue
                    r = bank_rank[b]
                    t = max(cand_bt[b], part_r[cmd * n_ranks + r], part_g[cmd * n_groups + bank_group[b]],
                            part_bus[(cmd * n_bus + bank_bus[b]) * n_ranks + r])
                    wait = min(max(t - now, 0), max_wait)
                    dist = b - rr_last - 1
                    if dist < 0:
                        dist += n_banks
                    best_key = min(best_key, (wait << key_shift) | dist)
                wait = best_key >> key_shift
                if wait == max_wait:
                    best_b = -1
                    best_t = FOREVER
                else:
                    best_b = (best_key & ((1 << key_shift) - 1)) + rr_last + 1
                    if best_b >= n_banks:
                        best_b -= n_banks
                    best_t = now + wait
            reuse = False
            if best_b >= 0 and best_t <= now:
                b = best_b
                i = cand_i[b]
                g = bank_group[b]
                r = bank_rank[b]
                cmd = cand_cmd[b]
                rr_last = b
                if cmd == CMD_READ or cmd == CMD_WRITE:
                    if kind[i] < 0:
                        kind[i] = K_HIT
                        counts[C_HITS] += 1
                    complete[i] = do_col(now, b, r, g, is_write[i])
                    base = b * cq
                    for s in range(cand_slot[b], bq_n[b] - 1):
                        bq[base + s] = bq[base + s + 1]
                    bq_n[b] -= 1
                    ct[CT_INBQ] -= 1
                    queued -= 1
                    if not is_write[i]:
                        ct[CT_RQUEUED] -= 1
                    refill(b)
                elif cmd == CMD_PRE:
                    if kind[i] < 0:
                        kind[i] = K_CONFLICT
                    do_pre(now, b)
                else:
                    if kind[i] < 0:
                        kind[i] = K_MISS
                    do_act(now, b, r, g, row[i])
                update_candidate(b)
                now += 1
                continue
            # nothing can issue now: jump to the next event
            if blocked:
                # a drain that started or stopped in this step may have made room
                blocked = (ct[CT_WB] >= wq_cap) if (buffered and is_write[nxt]) else (ct[CT_TQ] >= tq_cap)
            t_acc = FOREVER if nxt >= n or blocked else max(arrival[nxt], last_acc + 1)
            if best_b < 0 and t_acc == FOREVER and queued > 0:
                raise RuntimeError("pimsim controller deadlock: requests queued but none can issue")
            t_next = min(best_t, next_due, t_acc)
            now = max(now + 1, t_next)
            # if the best command's cycle comes before any arrival or refresh, the scan
            # just made still picks it: issue it without scanning again
            reuse = best_b >= 0 and now == best_t and t_acc > now and next_due > now
    for i in range(n):
        if kind[i] == K_COALESCED:
            complete[i] = complete[leader[i]]
    return counts[C_ACT]


@njit(cache=True)
def _prev_same_line(lines):
    """Index of the latest earlier request to the same line, or -1; lines >= 0.

    A stable LSD radix sort of the request indices by line (16 bits a pass), then one
    pass over equal runs: O(n) for the traces' bounded line numbers.
    """
    n = lines.shape[0]
    prev = np.full(n, -1, np.int64)
    if n < 2:
        return prev
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    top = lines.max()
    shift = 0
    while (top >> shift) > 0:
        count = np.zeros(65537, np.int64)
        for k in range(n):
            count[((lines[order[k]] >> shift) & 0xFFFF) + 1] += 1
        for d in range(65536):
            count[d + 1] += count[d]
        for k in range(n):
            d = (lines[order[k]] >> shift) & 0xFFFF
            tmp[count[d]] = order[k]
            count[d] += 1
        order, tmp = tmp, order
        shift += 16
    for k in range(1, n):
        if lines[order[k]] == lines[order[k - 1]]:
            prev[order[k]] = order[k - 1]
    return prev


@njit(cache=True)
def _active_rank_cycles(act_rank, act_start, act_end, n_ranks, end_cycle):
    """Cycles in [0, end_cycle) with at least one bank open, summed over ranks.

    Activation records of one rank come in issue order, so their starts never
    decrease; an end of -1 means the row was still open at the end.
    """
    total = 0
    run_start = np.full(n_ranks, -1, np.int64)
    run_end = np.full(n_ranks, -1, np.int64)
    for k in range(act_rank.shape[0]):
        r = act_rank[k]
        s = min(act_start[k], end_cycle)
        e = end_cycle if act_end[k] < 0 else min(act_end[k], end_cycle)
        if run_start[r] >= 0 and s <= run_end[r]:
            run_end[r] = max(run_end[r], e)
        else:
            if run_start[r] >= 0:
                total += run_end[r] - run_start[r]
            run_start[r] = s
            run_end[r] = e
    for r in range(n_ranks):
        if run_start[r] >= 0:
            total += run_end[r] - run_start[r]
    return total


@njit(cache=True)
def _cache_hits(lines, unit, n_units, sets, ways):
    """Hit flag of each access to per-unit set-associative LRU caches of lines.

    ``lines`` and ``unit`` have shape (n,); each unit has ``sets`` x ``ways`` lines.
    A line maps to set ``line mod sets``.
    """
    n = lines.shape[0]
    tags = np.full(n_units * sets * ways, -1, np.int64)
    stamp = np.zeros(n_units * sets * ways, np.int64)
    hit = np.zeros(n, np.bool_)
    for k in range(n):
        base = (unit[k] * sets + lines[k] % sets) * ways
        victim = base
        found = False
        for w in range(base, base + ways):
            if tags[w] == lines[k]:
                hit[k] = True
                stamp[w] = k + 1
                found = True
                break
            if stamp[w] < stamp[victim]:
                victim = w
        if not found:
            tags[victim] = lines[k]
            stamp[victim] = k + 1
    return hit
