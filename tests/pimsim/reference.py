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


def _merge(i, now, is_write, prev, leader, complete, kind, c):
    j = prev[i]
    if j < 0 or is_write[i]:
        return False
    if is_write[j]:
        if c.forward_writes and (complete[j] is None or complete[j] > now):
            kind[i] = "forwarded"
            complete[i] = now + c.forward_latency
            return True
        return False
    lead = leader[j]
    if c.coalesce_reads and lead is not None and (complete[lead] is None or complete[lead] > now):
        kind[i] = "coalesced"
        leader[i] = lead
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
    hits = 0
    if c.scheduler is Scheduler.FCFS:
        last_acc = -10**12
        floor = 0
        col_times = []  # column cycles of queued requests, in order
        for i in range(n):
            t_acc = max(arrival[i], last_acc + 1)
            if _merge(i, t_acc, is_write, prev, leader, complete, kind, c):
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
        queues = {}  # bank -> list of request indices, oldest first
        waiting = []  # transaction queue: requests whose bank queue is full, and held writes
        nxt, last_acc, now = 0, -10**12, 0
        drain_at = c.write_drain_threshold
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

        def eligible(i):
            return dep[i] is None or complete[dep[i]] is not None

        w = {"draining": False, "moves": 0, "pending": 0, "in_bq": 0}

        def movable(i):
            if drain_at == 0:
                return True
            if not is_write[i]:
                return not w["draining"]
            return w["draining"] and w["moves"] > 0 and eligible(i)

        def move_in(x):
            waiting.remove(x)
            queues.setdefault(bank[x], []).append(x)
            if is_write[x]:
                w["moves"] -= 1
                w["in_bq"] += 1

        def refill(b):
            s = 0
            while s < len(waiting) and len(queues.setdefault(b, [])) < c.command_queue:
                if bank[waiting[s]] == b and movable(waiting[s]):
                    move_in(waiting[s])
                else:
                    s += 1

        def refill_all():
            s = 0
            while s < len(waiting):
                x = waiting[s]
                if len(queues.setdefault(bank[x], [])) < c.command_queue and movable(x):
                    move_in(x)
                else:
                    s += 1

        while nxt < n or any(queues.values()) or waiting:
            ref.refresh_until(now)
            start = False
            if nxt < n and max(arrival[nxt], last_acc + 1) <= now:
                i = nxt
                if _merge(i, now, is_write, prev, leader, complete, kind, c):
                    accept[i] = last_acc = now
                    dep[i] = depends_on(i)
                    nxt += 1
                else:
                    q = queues.setdefault(bank[i], [])
                    to_bank = (drain_at == 0 or (not is_write[i] and not w["draining"])) \
                        and len(q) < c.command_queue
                    held = w["pending"] - w["in_bq"]
                    if is_write[i] and drain_at > 0:
                        room = held < drain_at  # the write buffer
                    else:
                        room = len(waiting) - held < c.transaction_queue
                    if to_bank or room:
                        accept[i] = last_acc = now
                        leader[i] = i
                        dep[i] = depends_on(i)
                        nxt += 1
                        if to_bank:
                            q.append(i)
                            if is_write[i]:
                                w["in_bq"] += 1
                        else:
                            waiting.append(i)
                        if is_write[i]:
                            w["pending"] += 1
                            start = drain_at > 0 and w["pending"] - w["in_bq"] >= drain_at
                        else:
                            start = drain_at > 0 and dep[i] is not None and complete[dep[i]] is None
            if drain_at > 0 and w["pending"] > 0:
                idle = not any(eligible(i) for q2 in queues.values() for i in q2)
                if idle and w["draining"]:
                    w["draining"] = False
                    refill_all()
                elif idle and w["pending"] > w["in_bq"]:
                    start = True
            if start and not w["draining"]:
                w["draining"] = True
                w["moves"] = w["pending"] - w["in_bq"]
                refill_all()
                if w["moves"] == 0:
                    w["draining"] = False
                    refill_all()
            options = []  # (not a hit, request, bank, command)
            for b, q in queues.items():
                ok = [i for i in q if eligible(i)]
                if not ok:
                    continue
                hit = next((i for i in ok if ref.open_row.get(b) == row[i]), None)
                if (c.row_hit_cap > 0 and b in ref.open_row and hit is not None and hit != ok[0]
                        and ref.column_commands_since_act(b) >= c.row_hit_cap):
                    hit = None  # the row had its share of hits: the oldest request goes first
                if hit is not None:
                    if ref.legal_col(b, row[hit], is_write[hit], now):
                        options.append((0, hit, b, "COL"))
                elif b in ref.open_row:
                    if ref.legal_pre(b, now):
                        options.append((1, ok[0], b, "PRE"))
                elif ref.legal_act(b, now):
                    options.append((1, ok[0], b, "ACT"))
            if options:
                _, i, b, cmd = min(options)
                if cmd == "COL":
                    if kind[i] is None:
                        kind[i] = "hit"
                        hits += 1
                    complete[i] = ref.issue("WR" if is_write[i] else "RD", b, now, write=is_write[i])
                    queues[b].remove(i)
                    if is_write[i]:
                        w["pending"] -= 1
                        w["in_bq"] -= 1
                    refill(b)
                    if w["draining"] and w["moves"] == 0:
                        w["draining"] = False
                        refill_all()
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
