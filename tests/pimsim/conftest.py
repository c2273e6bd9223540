import dataclasses

import pytest

from pimsim import load_hardware


def small_hardware(scheduler="frfcfs", page="open", tq=6, cq=2, trefi=400, trfc=60, ranks=2,
                   coalesce=True, forward=True, drain=3, hit_cap=2):
    """DDR4-2400 timing on a tiny organisation, with refresh often enough to matter."""
    hw = load_hardware("ddr4-2400")
    org = dataclasses.replace(hw.org, ranks=ranks, bankgroups=2, banks_per_group=2, rows=16,
                              columns=64, page_policy=page)
    timing = dataclasses.replace(hw.timing, trefi=trefi, trfc=trfc)
    ctrl = dataclasses.replace(hw.controller, scheduler=scheduler, transaction_queue=tq,
                               command_queue=cq, coalesce_reads=coalesce, forward_writes=forward,
                               write_drain_threshold=drain, row_hit_cap=hit_cap)
    return dataclasses.replace(hw, org=org, timing=timing, controller=ctrl)


@pytest.fixture
def ddr4():
    return load_hardware("ddr4-2400")
