"""Private numba kernels: the DRAM controller and device timing model.

Everything here works on plain int64 arrays. One call simulates one controller
(a channel for the host, a rank for rank-level near-memory units). Times are in
DRAM clock cycles. The per-controller kernels release the GIL (``nogil``), so
independent controllers can run on threads (``pimsim.sim.run_controllers``).

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

CAL = 64  # cycles the FR-FCFS calendar spans: one 64-bit word of rows

# Index of the lowest set bit of a 64-bit word x: DEBRUIJN64[((x & -x) * DEBRUIJN64_MUL) >> 58 & 63].
DEBRUIJN64_MUL = 0x03F79D71B4CB0A89
DEBRUIJN64 = np.zeros(64, np.int64)
for _k in range(64):
    DEBRUIJN64[((((1 << _k) * DEBRUIJN64_MUL) & ((1 << 64) - 1)) >> 58) & 63] = _k


@njit(cache=True, nogil=True)
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
    n_banks = bs.shape[0]
    # bank -> bank group, rank and data bus, computed once: integer division is slow
    bank_group = np.arange(n_banks) // p[P_BANKS_PER_GROUP]
    bank_rank = bank_group // p[P_BANKGROUPS]
    bank_bus = np.arange(n_banks) // p[P_BANKS_PER_BUS]
    leader = np.full(n, -1, np.int64)
    refreshed = np.zeros(rs.shape[0], np.bool_)  # ranks refresh_until has refreshed since last cleared
    dep = np.full(n, -1, np.int64)  # older request to the same line that must issue first
    # FCFS: column cycles of the last P_TQ queued requests: an entry frees at its column
    ring = np.full(max(1, p[P_TQ]), NEVER, np.int64)
    # FR-FCFS state (per-request lists sized 0 under FCFS, which never reads them)
    n_fr = n if p[P_FRFCFS] != 0 else 0
    bq = np.empty(n_banks * max(1, p[P_CQ]), np.int64)  # per-bank command queues, oldest first
    bq_n = np.zeros(n_banks, np.int64)
    # accepted requests waiting for a command-queue entry, per bank and oldest first, in
    # singly linked lists: [bank] the transaction queue's, [n_banks + bank] the write buffer's
    w_head = np.full(2 * n_banks, -1, np.int64)
    w_tail = np.full(2 * n_banks, -1, np.int64)
    w_next = np.full(n_fr, -1, np.int64)
    held = np.zeros(n_fr, np.bool_)  # in the write buffer
    raw_readers = np.zeros(n_fr, np.int64)  # reads waiting in tq for this held write
    ct = np.zeros(N_CT, np.int64)
    cand_i = np.zeros(n_banks, np.int64)
    cand_slot = np.zeros(n_banks, np.int64)
    cand_cmd = np.zeros(n_banks, np.int64)
    cand_t = np.full(n_banks, FOREVER, np.int64)  # lower bound of the command's legal cycle
    n_words = (n_banks + 63) >> 6
    maybe = np.zeros(n_words, np.int64)  # banks whose bound has come
    cal = np.zeros((CAL, n_words), np.int64)  # banks filed at cycle t, in row t % CAL
    cal_row = np.full(n_banks, -1, np.int64)  # the bank's last calendar row, or -1
    occ = np.zeros(1, np.int64)  # bit k: calendar row k holds a bank
    clock = np.zeros(1, np.int64)  # the cycle the bitset and calendar are up to
    # FR-FCFS: the banks whose command is CMD_* (row CMD_*; only the READ, WRITE and ACT
    # rows are read, so the NONE row need not start full), and each data bus's and rank's
    # banks, a bit per bank: an issued command files the others it delays in one move
    cmd_bits = np.zeros((5, n_words), np.int64)
    n_bus = bus.shape[0]
    groups = np.zeros((n_bus + rs.shape[0], n_words), np.int64)  # rows: each bus's, then each rank's
    for b in range(n_banks):
        groups[bank_bus[b], b >> 6] |= np.int64(1) << (b & 63)
        groups[n_bus + bank_rank[b], b >> 6] |= np.int64(1) << (b & 63)
    kind[:] = -1
    complete[:] = -1
    return _controller(bank, row, is_write, arrival, prev_same, p, accept, complete, kind, counts,
                       act_rank, act_start, act_end, bs, rs, gs, bus, bank_group, bank_rank, bank_bus,
                       leader, refreshed, dep, ring, bq, bq_n, w_head, w_tail, w_next, held, raw_readers,
                       ct, cand_i, cand_slot, cand_cmd, cand_t, maybe, cal, cal_row, occ, clock,
                       cmd_bits, groups)


# The controller runs without numba's reference counting (``_nrt=False``), so it may not
# allocate: ``_simulate`` allocates its state and calls it. With counting on, numba counts
# references (atomically) to the state arrays that its branchy closures capture, and its
# pruning pass removes few of those counts here: the FR-FCFS kernel ran 1.26-1.61x slower
# (side by side on 1M-request random, sequential and Zipf traces).
# (Module-level helpers instead of closures were slower still: each call passes a dozen array
# structs by value.)
@njit(cache=True, nogil=True, _nrt=False)
def _controller(bank, row, is_write, arrival, prev_same, p, accept, complete, kind, counts,
                act_rank, act_start, act_end, bs, rs, gs, bus, bank_group, bank_rank, bank_bus,
                leader, refreshed, dep, ring, bq, bq_n, w_head, w_tail, w_next, held, raw_readers,
                ct, cand_i, cand_slot, cand_cmd, cand_t, maybe, cal, cal_row, occ, clock,
                cmd_bits, groups):
    """``_simulate``'s work: its arguments, then the state it allocated (described where
    ``_simulate`` allocates it)."""
    n = bank.shape[0]
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
    closed_page = p[P_CLOSED] != 0
    n_banks = bs.shape[0]
    n_ranks = rs.shape[0]
    n_words = maybe.shape[0]
    n_records = act_rank.shape[0]
    n_bus = bus.shape[0]

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
            refreshed[r] = True
            for b in range(r * banks_per_rank, (r + 1) * banks_per_rank):
                bs[b, B_NEXT_ACT] = start + trfc
            rs[r, R_REF_DUE] = due + trefi
        return FOREVER


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
        # No step looks at every bank. Each bank's command carries a lower bound on the cycle
        # it becomes legal (exact when computed; the shared rank, bank-group and bus limits
        # only move later, so it stays a lower bound until the bank's own command changes).
        # Banks whose bound has come sit in a bitset scanned round-robin; the others wait in
        # a calendar of the next CAL cycles, one bitset per cycle (a bound further out is
        # filed at the calendar's end and looked at again then). An issued burst or ACT also
        # files, in one move, the banks whose command it delays (``file_behind``): under a
        # backlog each would otherwise be looked at once per command that overtakes it (on
        # 1M random reads, 14 looks per request before this, 5.4 after).
        cq = p[P_CQ]
        tq_cap = p[P_TQ]
        wq_cap = p[P_WQ]
        w_high = p[P_WHIGH]
        w_low = p[P_WLOW]
        hit_cap = p[P_HIT_CAP]
        buffered = wq_cap > 0
        # a rank switch on a bus lowers the other rank's bus limit when tRTRS exceeds a
        # burst slot; then the banks of that rank must be looked at again
        bus_bound_can_drop = trtrs > bus_hold
        queued = 0

        def ready_time(b, cmd):
            """First cycle at which bank ``b``'s command ``cmd`` is legal, given all issued so far."""
            r = bank_rank[b]
            g = bank_group[b]
            if cmd == CMD_ACT:
                return max(bs[b, B_NEXT_ACT], rs[r, R_LAST_ACT] + trrd_s, gs[g, G_LAST_ACT] + trrd_l,
                           rs[r, R_FAW0 + rs[r, R_FAW_POS]] + tfaw)
            if cmd == CMD_PRE:
                return bs[b, B_PRE_OK]
            return col_ready(b, r, g, cmd == CMD_WRITE)

        def clear_cal(k, w, bits):
            """Take the banks of ``bits`` (word ``w``) out of calendar row ``k``; mark the row
            free if that empties it."""
            cal[k, w] &= ~bits
            for ww in range(n_words):
                if cal[k, ww] != 0:
                    return
            occ[0] &= ~(np.int64(1) << k)

        def occupied_from(u):
            """The calendar's occupied rows by cycle: bit j for cycle ``u + j`` (``u`` after the clock)."""
            x = occ[0]
            s = u & (CAL - 1)
            if s > 0:
                x = ((x >> s) & ((np.int64(1) << (CAL - s)) - 1)) | (x << (CAL - s))
            return x

        def unfile(b):
            w = b >> 6
            bit = np.int64(1) << (b & 63)
            maybe[w] &= ~bit
            k = cal_row[b]  # may be stale (the row was taken since): then the bit is not there
            if k >= 0 and cal[k, w] & bit:
                clear_cal(k, w, bit)

        def place(b):
            """File bank ``b`` by its bound ``cand_t[b]``: the bitset if it has come, else the calendar."""
            unfile(b)
            w = b >> 6
            bit = np.int64(1) << (b & 63)
            now = clock[0]
            if cand_t[b] <= now:
                maybe[w] |= bit
            else:
                k = min(cand_t[b], now + CAL - 1) & (CAL - 1)
                cal[k, w] |= bit
                cal_row[b] = k
                occ[0] |= np.int64(1) << k

        def take_row(k):
            """Move calendar row ``k``'s banks into the bitset."""
            for w in range(n_words):
                maybe[w] |= cal[k, w]
                cal[k, w] = 0
            occ[0] &= ~(np.int64(1) << k)

        def set_cmd_bit(b, cmd):
            """Move bank ``b``'s bit from its command's row of ``cmd_bits`` to ``cmd``'s and
            record ``cmd`` as its command."""
            w = b >> 6
            bit = np.int64(1) << (b & 63)
            cmd_bits[cand_cmd[b], w] &= ~bit
            cmd_bits[cmd, w] |= bit
            cand_cmd[b] = cmd

        def move_bits(x, w, k):
            """File the banks of bit word ``x`` (word ``w``) in calendar row ``k``."""
            cal[k, w] |= x
            occ[0] |= np.int64(1) << k
            while x != 0:
                low = x & -x
                cal_row[(w << 6) + DEBRUIJN64[((low * DEBRUIJN64_MUL) >> 58) & 63]] = k
                x ^= low

        def file_behind(m, group, t):
            """File at cycle ``t`` every bank of ``groups[group]`` (bank bits) whose command is
            ``m`` and that sits in the bitset or in the calendar before ``t``: a command just
            issued keeps them all waiting until at least ``t`` (a burst: its bus's other reads
            or writes; an ACT: its rank's other ACTs, tRRD_S and tFAW). Under a backlog each
            waiting bank would otherwise be looked at, and filed again, once per command."""
            now = clock[0]
            if t <= now:
                return
            t = min(t, now + CAL - 1)
            kt = t & (CAL - 1)
            # calendar rows of cycles now + 1 .. t - 1, bit j for cycle now + 1 + j
            x = occupied_from(now + 1) & ((np.int64(1) << (t - now - 1)) - 1)
            for w in range(n_words):
                sel = groups[group, w] & cmd_bits[m, w]
                if sel == 0:
                    continue
                y = maybe[w] & sel
                if y != 0:
                    maybe[w] &= ~y
                    move_bits(y, w, kt)
                rows = x
                while rows != 0:
                    low = rows & -rows
                    rows ^= low
                    k = (now + 1 + DEBRUIJN64[((low * DEBRUIJN64_MUL) >> 58) & 63]) & (CAL - 1)
                    y = cal[k, w] & sel
                    if y != 0:
                        clear_cal(k, w, y)
                        move_bits(y, w, kt)

        def advance(t):
            """Bring the bitset up to cycle ``t``: every bank filed at a cycle <= t joins it."""
            t0 = clock[0]
            clock[0] = t
            if occ[0] == 0:
                return
            if t - t0 >= CAL:
                for k in range(CAL):
                    if (occ[0] >> k) & 1:
                        take_row(k)
                return
            for u in range(t0 + 1, t + 1):
                k = u & (CAL - 1)
                if (occ[0] >> k) & 1:
                    take_row(k)

        def first_filed():
            """The earliest cycle after the clock with a bank in the calendar; FOREVER if none."""
            if occ[0] == 0:
                return FOREVER
            x = occupied_from(clock[0] + 1)
            low = x & -x
            return clock[0] + 1 + DEBRUIJN64[((low * DEBRUIJN64_MUL) >> 58) & 63]

        def next_maybe(after):
            """The first bank in the bitset after bank ``after``, cyclically; -1 if none."""
            start = after + 1
            if start >= n_banks:
                start = 0
            w = start >> 6
            x = maybe[w] & -(np.int64(1) << (start & 63))
            for _ in range(n_words + 1):
                if x != 0:
                    low = x & -x
                    return (w << 6) + DEBRUIJN64[((low * DEBRUIJN64_MUL) >> 58) & 63]
                w += 1
                if w == n_words:
                    w = 0
                x = maybe[w]
            return -1

        def enter(i):
            b = bank[i]
            bq[b * cq + bq_n[b]] = i
            bq_n[b] += 1
            ct[CT_INBQ] += 1

        def movable(i):
            """May accepted request ``i`` enter its bank's command queue now? Only once what it
            depends on has issued, so a command queue never holds a request that cannot go."""
            if dep[i] >= 0 and complete[dep[i]] < 0:
                return False
            if buffered:
                return (ct[CT_DRAIN] != 0) == is_write[i]
            return True

        def wait_append(lst, i):
            if w_tail[lst] >= 0:
                w_next[w_tail[lst]] = i
            else:
                w_head[lst] = i
            w_tail[lst] = i
            w_next[i] = -1

        def refill(b):
            """Move bank ``b``'s oldest movable waiting requests into its command queue (the
            transaction queue's first, then the write buffer's); True if any moved."""
            moved = False
            for lst in (b, n_banks + b):
                prev = -1
                x = w_head[lst]
                while x >= 0 and bq_n[b] < cq:
                    nx = w_next[x]
                    if movable(x):
                        if prev >= 0:
                            w_next[prev] = nx
                        else:
                            w_head[lst] = nx
                        if nx < 0:
                            w_tail[lst] = prev
                        if lst < n_banks:
                            ct[CT_TQ] -= 1
                        else:
                            ct[CT_WB] -= 1
                            held[x] = False
                            ct[CT_RAW] -= raw_readers[x]
                            raw_readers[x] = 0
                        enter(x)
                        moved = True
                    else:
                        prev = x
                    x = nx
            return moved

        def update_candidate(b):
            """Bank ``b``'s next command: its first row hit, else its first request's PRE or
            ACT; then its exact legal cycle, and file the bank by it."""
            base = b * cq
            if bq_n[b] == 0:
                set_cmd_bit(b, CMD_NONE)
                cand_t[b] = FOREVER
                unfile(b)
                return
            open_row = bs[b, B_OPEN_ROW]
            # after hit_cap column commands to one row, the oldest request decides
            capped = hit_cap > 0 and open_row >= 0 and bs[b, B_HITS] >= hit_cap
            last = 1 if capped else bq_n[b]
            cmd = CMD_ACT
            slot = 0
            for s in range(last):
                if row[bq[base + s]] == open_row:
                    cmd = CMD_WRITE if is_write[bq[base + s]] else CMD_READ
                    slot = s
                    break
            if cmd == CMD_ACT and open_row >= 0:
                cmd = CMD_PRE
            set_cmd_bit(b, cmd)
            cand_slot[b] = slot
            cand_i[b] = bq[base + slot]
            cand_t[b] = ready_time(b, cmd)
            place(b)

        def refill_all():
            """Move every movable waiting request that has room, oldest first per bank."""
            if ct[CT_TQ] == 0 and ct[CT_WB] == 0:
                return
            for bb in range(n_banks):
                if (w_head[bb] >= 0 or w_head[n_banks + bb] >= 0) and bq_n[bb] < cq:
                    if refill(bb):
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
        rr_last = n_banks - 1  # the bank that issued last: round-robin starts after it
        while nxt < n or queued > 0:
            advance(now)
            if now >= next_due:
                next_due = refresh_until(now)
                # only the refreshed ranks' banks changed
                for r in range(n_ranks):
                    if refreshed[r]:
                        refreshed[r] = False
                        for b in range(r * banks_per_rank, (r + 1) * banks_per_rank):
                            if bq_n[b] > 0:
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
                            # an entry at the back changes the command only of a bank that
                            # had none or was about to close its row
                            if cand_cmd[b] == CMD_NONE or cand_cmd[b] == CMD_PRE:
                                update_candidate(b)
                        elif to_wb:
                            wait_append(n_banks + b, i)
                            ct[CT_WB] += 1
                            held[i] = True
                        else:
                            wait_append(b, i)
                            ct[CT_TQ] += 1
                            if buffered and dep[i] >= 0 and held[dep[i]]:
                                raw_readers[dep[i]] += 1
                                ct[CT_RAW] += 1
                    else:
                        blocked = True
            if buffered:
                update_drain()
            # the first bank after the last issuer whose command is legal now
            best_b = -1
            while True:
                b = next_maybe(rr_last)
                if b < 0:
                    break
                t = ready_time(b, cand_cmd[b])
                cand_t[b] = t
                if t <= now:
                    best_b = b
                    break
                place(b)
            if best_b >= 0:
                b = best_b
                i = cand_i[b]
                g = bank_group[b]
                r = bank_rank[b]
                cmd = cand_cmd[b]
                rr_last = b
                n_behind, group, t_behind, t_behind2 = 0, 0, 0, 0
                if cmd == CMD_READ or cmd == CMD_WRITE:
                    if kind[i] < 0:
                        kind[i] = K_HIT
                        counts[C_HITS] += 1
                    d = bank_bus[b]
                    bus_rank = bus[d, 1]
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
                    if bus_bound_can_drop and bus_rank != r:
                        for bb in range(n_banks):
                            if bank_bus[bb] == d and bank_rank[bb] == r and bb != b and bq_n[bb] > 0:
                                update_candidate(bb)
                    # the other reads and writes on this bus wait for this burst
                    n_behind, group, t_behind, t_behind2 = 2, d, bus[d, 0] - cl, bus[d, 0] - cwl
                elif cmd == CMD_PRE:
                    if kind[i] < 0:
                        kind[i] = K_CONFLICT
                    do_pre(now, b)
                else:
                    if kind[i] < 0:
                        kind[i] = K_MISS
                    do_act(now, b, r, g, row[i])
                    # the other ACTs of this rank wait for tRRD_S and tFAW
                    n_behind, group = 1, n_bus + r
                    t_behind = max(now + trrd_s, rs[r, R_FAW0 + rs[r, R_FAW_POS]] + tfaw)
                if n_behind > 0:
                    set_cmd_bit(b, CMD_NONE)  # set again below
                    for q in range(n_behind):  # one call site: each is compiled inline
                        file_behind(CMD_ACT if cmd == CMD_ACT else CMD_READ + q, group,
                                    t_behind2 if q else t_behind)
                update_candidate(b)
                now += 1
                continue
            # nothing can issue now: jump to the next event; the earliest calendar row is a
            # lower bound of the next legal command (a step that finds none is harmless)
            t_cmd = first_filed()
            if blocked:
                # a drain that started or stopped in this step may have made room
                blocked = (ct[CT_WB] >= wq_cap) if (buffered and is_write[nxt]) else (ct[CT_TQ] >= tq_cap)
            t_acc = FOREVER if nxt >= n or blocked else max(arrival[nxt], last_acc + 1)
            if t_cmd == FOREVER and t_acc == FOREVER and queued > 0:
                raise RuntimeError("pimsim controller deadlock: requests queued but none can issue")
            now = max(now + 1, min(t_cmd, next_due, t_acc))
    for i in range(n):
        if kind[i] == K_COALESCED:
            complete[i] = complete[leader[i]]
    return counts[C_ACT]


@njit(cache=True)
def _split_addresses(addr, line_shift, capacity, shift, mask, stride, size, channel, bank, row, line):
    """Channel, rank-major bank index, row and line of each byte address, in one pass.

    ``shift``, ``mask``, ``stride``, ``size`` (5,): the channel, rank, bank group, bank and
    row fields' bit shift and mask (shift -1: not a power of two, use stride and size).
    Fills the four (n,) outputs; returns the index of the first address outside
    [0, capacity), or -1.
    """
    f = np.zeros(5, np.int64)
    for i in range(addr.shape[0]):
        a = addr[i]
        if a < 0 or a >= capacity:
            return i
        x = a >> line_shift
        line[i] = x
        for k in range(5):
            f[k] = (x >> shift[k]) & mask[k] if shift[k] >= 0 else (x // stride[k]) % size[k]
        channel[i] = f[0]
        bank[i] = (f[1] * size[2] + f[2]) * size[3] + f[3]
        row[i] = f[4]
    return -1


#: Requests from which ``_prev_same_line`` sorts by radix rather than by comparison.
RADIX_MIN_REQUESTS = 65_536
#: Widest radix digit: 12 bits (4,096 buckets) scattered 0.28 s against 0.30-0.31 s for 14-16 bits
#: and 0.34 s for 8 on 10M random lines of 27 bits (ad hoc, side by side, one core).
RADIX_MAX_BITS = 12


@njit(cache=True, nogil=True)
def _radix_sort_keys(packed, shift, key_bits):
    """``packed`` sorted by bits ``shift .. shift + key_bits`` (an LSD radix sort in equal
    digits of at most ``RADIX_MAX_BITS``; stable, so lower bits keep their order). The
    digits' histograms come from one pass. May return ``packed`` itself, reordered."""
    n = packed.shape[0]
    passes = (key_bits + RADIX_MAX_BITS - 1) // RADIX_MAX_BITS
    width = (key_bits + passes - 1) // passes
    buckets = 1 << width
    mask = buckets - 1
    count = np.zeros((passes, buckets + 1), np.int64)
    for k in range(n):
        x = packed[k] >> shift
        for q in range(passes):
            count[q, ((x >> (q * width)) & mask) + 1] += 1
    src = packed
    dst = np.empty(n, np.int64)
    for q in range(passes):
        c = count[q]
        for d in range(buckets):
            c[d + 1] += c[d]
        s = shift + q * width
        for k in range(n):
            v = src[k]
            d = (v >> s) & mask
            dst[c[d]] = v
            c[d] += 1
        src, dst = dst, src
    return src


@njit(cache=True, nogil=True)
def _prev_same_line(lines):
    """Index of the latest earlier request to the same line, or -1; lines >= 0.

    Each request becomes one key, line above index, and the keys are sorted by line: a
    radix sort for long traces, a comparison sort below ``RADIX_MIN_REQUESTS`` (radix
    counters would be paid by each of an HBM preset's 80 channel controllers a query),
    none when the lines never decrease. Neighbours with one line are then a request and
    its predecessor. One key array instead of an index permutation keeps every pass
    sequential: 2-3x faster on 10M random or Zipf lines than sorting indices.
    """
    n = lines.shape[0]
    prev = np.full(n, -1, np.int64)
    if n < 2:
        return prev
    top = lines.max()
    key_bits = 0
    while (top >> key_bits) > 0:
        key_bits += 1
    shift = 0
    while ((n - 1) >> shift) > 0:
        shift += 1
    if key_bits + shift > 62:  # the key would not fit: sort the indices instead
        order = np.argsort(lines, kind="mergesort")
        for k in range(1, n):
            if lines[order[k]] == lines[order[k - 1]]:
                prev[order[k]] = order[k - 1]
        return prev
    packed = np.empty(n, np.int64)
    ordered = True
    packed[0] = lines[0] << shift
    for k in range(1, n):
        packed[k] = (lines[k] << shift) | k
        if lines[k] < lines[k - 1]:
            ordered = False
    if not ordered:
        packed = np.sort(packed) if n < RADIX_MIN_REQUESTS else _radix_sort_keys(packed, shift, key_bits)
    low = (np.int64(1) << shift) - 1
    for k in range(1, n):
        a = packed[k - 1]
        b = packed[k]
        if (a >> shift) == (b >> shift):
            prev[b & low] = a & low
    return prev


@njit(cache=True)
def _group_by(keys, n_groups):
    """Indices of ``keys`` (shape (n,), each in [0, n_groups)) grouped by key, ascending,
    each group in index order (a counting sort), and the (n_groups,) group sizes."""
    counts = np.zeros(n_groups, np.int64)
    for k in range(keys.shape[0]):
        g = keys[k]
        if g < 0 or g >= n_groups:
            raise ValueError("_group_by: a key is outside [0, n_groups)")
        counts[g] += 1
    start = np.zeros(n_groups, np.int64)
    for g in range(1, n_groups):
        start[g] = start[g - 1] + counts[g - 1]
    order = np.empty(keys.shape[0], np.int64)
    for k in range(keys.shape[0]):
        g = keys[k]
        order[start[g]] = k
        start[g] += 1
    return order, counts


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
