"""A slow, obviously correct reference of the pimsim controller model.

It steps cycle by cycle (FR-FCFS) or searches cycle by cycle for the first legal
cycle (FCFS), and decides legality by checking each command against the whole
history of issued commands, one DRAM timing rule at a time. It shares no code
with the numba kernel; the tests require both to agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from pimsim.config import Hardware, PagePolicy, Scheduler


@dataclass
class Cmd:
    cycle: int
    kind: str  # ACT, PRE, RD, WR, REF
    rank: int
    group: int  # bank group within the rank
    bank: int  # global bank index within the controller (-1 for REF)


class Reference:
    def __init__(self, hw: Hardware, ranks: int, banks_per_bus: int, bus_gap: int = 0):
        t, o, c = hw.timing, hw.org, hw.controller
        self.t, self.o, self.c = t, o, c
        self.ranks = ranks
        self.banks_per_rank = o.bankgroups * o.banks_per_group
        self.banks_per_bus = banks_per_bus
        self.burst = o.burst_length // 2
        self.bus_hold = max(self.burst, bus_gap)
        self.closed = o.page_policy is PagePolicy.CLOSED
        self.history: list[Cmd] = []
        self.open_row: dict[int, int] = {}
        self.ref_due = [((r + 1) * t.trefi // ranks) if t.trefi > 0 else None for r in range(ranks)]
        self.bursts: list[tuple[int, int, int]] = []  # (bus, rank, data start)

    # --- where a bank sits
    def rank_of(self, b):
        return b // self.banks_per_rank

    def group_of(self, b):
        return (b // self.o.banks_per_group) % self.o.bankgroups

    # --- legality, rule by rule against the whole history
    def _last(self, kind, bank=None, rank=None):
        times = [c.cycle for c in self.history if c.kind == kind
                 and (bank is None or c.bank == bank) and (rank is None or c.rank == rank)]
        return max(times) if times else None

    def legal_act(self, b, cyc):
        t = self.t
        r, g = self.rank_of(b), self.group_of(b)
        if b in self.open_row:
            return False
        acts = [c for c in self.history if c.kind == "ACT" and c.rank == r]
        for a in acts:
            if cyc - a.cycle < (t.trrd_l if a.group == g else t.trrd_s):
                return False
        recent = sorted(a.cycle for a in acts)[-4:]
        if len(recent) == 4 and cyc < recent[0] + t.tfaw:
            return False
        for c in self.history:
            if c.kind == "PRE" and c.bank == b and cyc < c.cycle + t.trp:
                return False
            if c.kind == "REF" and c.rank == r and cyc < c.cycle + t.trfc:
                return False
        return True

    def legal_pre(self, b, cyc):
        t = self.t
        if b not in self.open_row:
            return False
        act = self._last("ACT", bank=b)
        if cyc < act + t.tras:
            return False
        for c in self.history:
            if c.bank != b or c.cycle < act:
                continue
            if c.kind == "RD" and cyc < c.cycle + t.trtp:
                return False
            if c.kind == "WR" and cyc < c.cycle + t.cwl + self.burst + t.twr:
                return False
        return True

    def legal_col(self, b, row, write, cyc):
        t = self.t
        r, g = self.rank_of(b), self.group_of(b)
        if self.open_row.get(b) != row:
            return False
        if cyc < self._last("ACT", bank=b) + t.trcd:
            return False
        for c in self.history:
            if c.rank != r:
                continue
            if c.kind in ("RD", "WR") and cyc < c.cycle + (t.tccd_l if c.group == g else t.tccd_s):
                return False
            if not write and c.kind == "WR":
                wtr = t.twtr_l if c.group == g else t.twtr_s
                if cyc < c.cycle + t.cwl + self.burst + wtr:
                    return False
            if write and c.kind == "RD" and cyc < c.cycle + t.cl + self.burst + 2 - t.cwl:
                return False
        start = cyc + (t.cwl if write else t.cl)
        bus = b // self.banks_per_bus
        for (d, rr, s) in self.bursts:
            if d == bus and start < s + self.bus_hold + (t.trtrs if rr != r else 0):
                return False
        return True

    # --- issuing
    def issue(self, kind, b, cyc, row=None, write=False):
        r, g = self.rank_of(b), self.group_of(b)
        self.history.append(Cmd(cyc, kind, r, g, b))
        if kind == "ACT":
            self.open_row[b] = row
        elif kind == "PRE":
            del self.open_row[b]
        else:
            self.bursts.append((b // self.banks_per_bus, r, cyc + (self.t.cwl if write else self.t.cl)))
            done = cyc + (self.t.cwl if write else self.t.cl) + self.burst
            if self.closed:
                pre = next(x for x in range(cyc, cyc + 10_000) if self.legal_pre(b, x))
                self.issue("PRE", b, pre)
            return done
        return None

    def refresh_until(self, cyc):
        t = self.t
        while True:
            due = [(d, r) for r, d in enumerate(self.ref_due) if d is not None and d <= cyc]
            if not due:
                return
            d, r = min(due)
            start = d
            for b in range(r * self.banks_per_rank, (r + 1) * self.banks_per_rank):
                if b in self.open_row:
                    pre = next(x for x in range(d, d + 10_000) if self.legal_pre(b, x))
                    self.issue("PRE", b, pre)
                # first cycle this bank may activate again
                start = max(start, next(x for x in range(start, start + 10_000)
                                        if self.legal_act_bank_only(b, x)))
            self.history.append(Cmd(start, "REF", r, -1, -1))
            self.ref_due[r] = d + t.trefi

    def column_commands_since_act(self, b):
        act = self._last("ACT", bank=b)
        return sum(1 for c in self.history if c.bank == b and c.kind in ("RD", "WR") and c.cycle >= act)

    def legal_act_bank_only(self, b, cyc):
        """The bank's own ACT rules (tRP after its PRE, tRFC after its rank's REF)."""
        r = self.rank_of(b)
        for c in self.history:
            if c.kind == "PRE" and c.bank == b and cyc < c.cycle + self.t.trp:
                return False
            if c.kind == "REF" and c.rank == r and cyc < c.cycle + self.t.trfc:
                return False
        return True


def _merge(i, now, is_write, prev, dep, leader, complete, kind, c):
    """Serve read i without a DRAM access when a pending request allows; True if so."""
    j = prev[i]
    if j < 0 or is_write[i]:
        return False
    if not is_write[j]:
        lead = leader[j]
        if c.coalesce_reads and lead is not None and (complete[lead] is None or complete[lead] > now):
            kind[i] = "coalesced"
            leader[i] = lead
            return True
    w = dep[i]  # the latest earlier write to the line, if i must follow it
    if c.forward_writes and w is not None and (complete[w] is None or complete[w] > now):
        kind[i] = "forwarded"
        complete[i] = now + c.forward_latency
        return True
    return False


def simulate_reference(hw: Hardware, bank, row, is_write, arrival, lines, ranks, banks_per_bus, bus_gap=0):
    """Return (accept, complete, kind, counts) lists for one controller."""
    n = len(bank)
    ref = Reference(hw, ranks, banks_per_bus, bus_gap)
    c = hw.controller
    prev = []
    for i in range(n):
        earlier = [j for j in range(i) if lines[j] == lines[i]]
        prev.append(earlier[-1] if earlier else -1)
    accept, complete, kind, leader = [None] * n, [None] * n, [None] * n, [None] * n
    dep = [None] * n

    def depends_on(i):
        """The older request to i's line that must issue first: the latest write, or
        for a write after a read, that read's DRAM access."""
        j = prev[i]
        if j < 0:
            return None
        if is_write[j]:
            return j
        if is_write[i] and leader[j] is not None:
            return leader[j]
        return dep[j]

    hits = 0
    if c.scheduler is Scheduler.FCFS:
        last_acc = -10**12
        floor = 0
        col_times = []  # column cycles of queued requests, in order
        for i in range(n):
            t_acc = max(arrival[i], last_acc + 1)
            dep[i] = depends_on(i)
            if _merge(i, t_acc, is_write, prev, dep, leader, complete, kind, c):
                accept[i] = last_acc = t_acc
                continue
            if len(col_times) >= c.transaction_queue:
                t_acc = max(t_acc, col_times[-c.transaction_queue])
            accept[i] = last_acc = t_acc
            leader[i] = i
            b = bank[i]
            start = max(t_acc, floor)
            ref.refresh_until(start)
            if ref.open_row.get(b) == row[i]:
                kind[i] = "hit"
                hits += 1
                first = None
            else:
                if b in ref.open_row:
                    kind[i] = "conflict"
                    first = next(x for x in range(start, start + 10**6) if ref.legal_pre(b, x))
                    ref.issue("PRE", b, first)
                    t_act = next(x for x in range(first, first + 10**6) if ref.legal_act(b, x))
                else:
                    kind[i] = "miss"
                    t_act = next(x for x in range(start, start + 10**6) if ref.legal_act(b, x))
                    first = t_act
                ref.issue("ACT", b, t_act, row=row[i])
            t_col = next(x for x in range(start, start + 10**6) if ref.legal_col(b, row[i], is_write[i], x))
            complete[i] = ref.issue("WR" if is_write[i] else "RD", b, t_col, write=is_write[i])
            floor = first if first is not None else t_col
            col_times.append(t_col)
    else:
        n_banks = ranks * ref.banks_per_rank
        queues = {b: [] for b in range(n_banks)}  # command queue of each bank, oldest first
        waiting = []  # the transaction queue: accepted, not yet in a command queue
        wbuf = []  # the write buffer: accepted writes, not yet in a command queue
        buffered = c.write_queue > 0
        w = {"draining": False}
        raw_readers = {}  # held write -> reads waiting for it (no forwarding)
        rr_last = n_banks - 1  # the bank that issued last: round-robin starts after it
        nxt, last_acc, now = 0, -10**12, 0

        def eligible(i):
            return dep[i] is None or complete[dep[i]] is not None

        def movable(i):
            """May accepted request i enter its bank's command queue now?"""
            if not eligible(i):
                return False
            if buffered and is_write[i]:
                return w["draining"]
            return not (buffered and w["draining"])

        def move_in(x):
            (wbuf if x in wbuf else waiting).remove(x)
            queues[bank[x]].append(x)
            raw_readers.pop(x, None)

        def refill(b):
            for src in (waiting, wbuf):
                for x in list(src):
                    if bank[x] == b and len(queues[b]) < c.command_queue and movable(x):
                        move_in(x)

        def refill_all():
            for src in (waiting, wbuf):
                for x in list(src):
                    if len(queues[bank[x]]) < c.command_queue and movable(x):
                        move_in(x)

        def update_drain():
            """Start or stop a write drain until neither rule fires (at most start, stop, start)."""
            for _ in range(6):
                held = len(wbuf)
                reads_waiting = sum(1 for x in waiting if not is_write[x])
                raw_wait = sum(raw_readers.values())
                in_queues = sum(len(q) for q in queues.values())
                reads_queued = reads_waiting + sum(1 for q in queues.values() for x in q if not is_write[x])
                if w["draining"]:
                    # stop at the low watermark once reads wait (unless one waits for a held
                    # write), when the buffer is empty, or when nothing is queued: then every
                    # held write waits on a read that the drain keeps out
                    if not (held == 0 or in_queues == 0
                            or (held <= c.write_low_watermark and reads_waiting > 0 and raw_wait == 0)):
                        return
                    w["draining"] = False
                else:
                    if not (held > 0 and (held >= c.write_high_watermark or raw_wait > 0 or reads_queued == 0)):
                        return
                    w["draining"] = True
                refill_all()
            raise AssertionError("write drain rules do not settle")

        while nxt < n or any(queues.values()) or waiting or wbuf:
            ref.refresh_until(now)
            if nxt < n and max(arrival[nxt], last_acc + 1) <= now:
                i = nxt
                dep[i] = depends_on(i)
                if _merge(i, now, is_write, prev, dep, leader, complete, kind, c):
                    accept[i] = last_acc = now
                    nxt += 1
                else:
                    if buffered and is_write[i]:
                        room = len(wbuf) < c.write_queue
                    else:
                        room = len(waiting) < c.transaction_queue
                    if room:
                        accept[i] = last_acc = now
                        leader[i] = i
                        nxt += 1
                        if movable(i) and len(queues[bank[i]]) < c.command_queue:
                            queues[bank[i]].append(i)
                        elif buffered and is_write[i]:
                            wbuf.append(i)
                        else:
                            waiting.append(i)
                            if buffered and dep[i] in wbuf:
                                raw_readers[dep[i]] = raw_readers.get(dep[i], 0) + 1
            if buffered:
                update_drain()
            options = []  # (round-robin distance, request, bank, command)
            for b, q in queues.items():
                if not q:
                    continue
                assert all(eligible(i) for i in q), "a command queue holds a request that cannot issue"
                hit = next((i for i in q if ref.open_row.get(b) == row[i]), None)
                if (c.row_hit_cap > 0 and b in ref.open_row and hit is not None and hit != q[0]
                        and ref.column_commands_since_act(b) >= c.row_hit_cap):
                    hit = None  # the row had its share of hits: the oldest request goes first
                dist = (b - rr_last - 1) % n_banks
                if hit is not None:
                    if ref.legal_col(b, row[hit], is_write[hit], now):
                        options.append((dist, hit, b, "COL"))
                elif b in ref.open_row:
                    if ref.legal_pre(b, now):
                        options.append((dist, q[0], b, "PRE"))
                elif ref.legal_act(b, now):
                    options.append((dist, q[0], b, "ACT"))
            if options:
                _, i, b, cmd = min(options)
                rr_last = b
                if cmd == "COL":
                    if kind[i] is None:
                        kind[i] = "hit"
                        hits += 1
                    complete[i] = ref.issue("WR" if is_write[i] else "RD", b, now, write=is_write[i])
                    queues[b].remove(i)
                    refill(b)
                elif cmd == "PRE":
                    kind[i] = kind[i] or "conflict"
                    ref.issue("PRE", b, now)
                else:
                    kind[i] = kind[i] or "miss"
                    ref.issue("ACT", b, now, row=row[i])
            now += 1
    for i in range(n):
        if kind[i] == "coalesced":
            complete[i] = complete[leader[i]]
    counts = {k: sum(1 for x in ref.history if x.kind == k) for k in ("ACT", "PRE", "RD", "WR", "REF")}
    counts["hits"] = hits
    return accept, complete, kind, counts
